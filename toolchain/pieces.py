"""The two things a fat binary gets: the Multiverse runtime (toolchain/runtime/build/runtime.elf,
read with pyelftools) and the AeroKernel image (an ELF file, embedded whole); and the accelerator
SDK that `mvemu hybridize --sdk DIR` installs (toolchain/sdk/: hrt.h and build/libmvhrt.a)."""
from __future__ import annotations

from dataclasses import dataclass, field
import shutil
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from hvm import abi

from .elf import ET_EXEC, SHF_ALLOC, Elf
from .errors import Refused
from .fatbinary import CONFIG, unpack_config

REPO = Path(__file__).resolve().parent.parent
RUNTIME_ELF = REPO / "toolchain" / "runtime" / "build" / "runtime.elf"
AEROKERNEL_ELF = REPO / "aerokernel" / "build" / "aerokernel.elf"
SDK_DIR = REPO / "toolchain" / "sdk"
SDK_FILES = (SDK_DIR / "hrt.h", SDK_DIR / "build" / "libmvhrt.a")
_BUILD_IT = "build it with `make images`"


@dataclass(frozen=True)
class Runtime:
    """The runtime's loadable bytes, linked at address 0, and where its symbols are in them."""
    code: bytes
    align: int               # the alignment its sections need
    mv_main: int
    mv_config: int
    functions: dict = field(default_factory=dict)   # every function symbol: name -> offset (overrides)

    def with_config(self, config: bytes) -> bytes:
        return self.code[:self.mv_config] + config + self.code[self.mv_config + len(config):]


def load_runtime(path: Path = RUNTIME_ELF) -> Runtime:
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
            if len(loads) != 1 or loads[0]["p_vaddr"] != 0 or loads[0]["p_filesz"] != loads[0]["p_memsz"]:
                raise Refused(f"{path} is not one segment linked at 0 ({_BUILD_IT})")
            code = loads[0].data()
            align = max(s["sh_addralign"] for s in elf.iter_sections() if s["sh_flags"] & SHF_ALLOC)
            symtab = elf.get_section_by_name(".symtab")
            symbols = {s.name: s["st_value"] for s in symtab.iter_symbols()} if symtab else {}
            functions = {s.name: s["st_value"] for s in symtab.iter_symbols()
                         if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF"} if symtab else {}
    except FileNotFoundError:
        raise Refused(f"the Multiverse runtime is not built ({path}): {_BUILD_IT}")
    except (OSError, ELFError) as e:
        raise Refused(f"cannot read the Multiverse runtime {path}: {e}")
    missing = {"mv_main", "mv_config"} - symbols.keys()
    if missing:
        raise Refused(f"{path} lacks {', '.join(sorted(missing))} ({_BUILD_IT})")
    runtime = Runtime(code, align, symbols["mv_main"], symbols["mv_config"], functions)
    config = unpack_config(code[runtime.mv_config:runtime.mv_config + CONFIG.size])
    if (config.magic, config.version) != (abi.FAT_CONFIG_MAGIC, abi.FAT_VERSION):
        raise Refused(f"{path} was built for another version of hvm/abi.py ({_BUILD_IT})")
    return runtime


def load_aerokernel(path: Path = AEROKERNEL_ELF) -> bytes:
    """The image file's bytes, after a first check (the VMM checks the rest when it installs it)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        hint = f": {_BUILD_IT}" if Path(path) == AEROKERNEL_ELF else ""
        raise Refused(f"no AeroKernel image at {path}{hint}")
    except OSError as e:
        raise Refused(f"cannot read the AeroKernel image {path}: {e.strerror}")
    try:
        if Elf(data).type != ET_EXEC:
            raise Refused("not an ET_EXEC")
    except Refused as e:
        raise Refused(f"{path} is not an AeroKernel image: {e}")
    return data


def install_sdk(directory: str | Path) -> list[Path]:
    """Copy the SDK's header and library into `directory` (created if need be); the paths written."""
    for f in SDK_FILES:
        if not f.is_file():
            raise Refused(f"the accelerator SDK is not built ({f} is missing): {_BUILD_IT}")
    target = Path(directory)
    written = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for f in SDK_FILES:
            shutil.copyfile(f, target / f.name)
            written.append(target / f.name)
    except OSError as e:
        raise Refused(f"cannot install the SDK in {directory}: {e.strerror or e}")
    return written
