"""The differential harness: run a program natively and under mvemu, and compare what a user sees.

Native Linux is the oracle. For one `Case` (a program path, its arguments, stdin bytes, the
environment, the umask, files prepared in a work directory) the harness runs the binary directly and
then `python -m hvm run` on the same binary, one after the other, in the *same* work directory (wiped
and re-populated in between), with the same argv[0] string, environment, stdin and timeout. It then
compares:

- stdout bytes and stderr bytes;
- the exit status: a native death by signal N (`returncode == -N`) must show as mvemu exit status
  128+N, and then mvemu must have printed exactly one extra stderr line starting with `mvemu: `
  that names the signal (e.g. contains "SIGSEGV"); that line is removed before stderr is compared;
- the files left behind in the work directory: names, kinds, symlink targets, permission bits,
  sizes and contents (with `stdout_file`, stdout goes to a file there instead of a pipe).

Some mvemu notes on stderr are by design (an unimplemented system call is reported once); a case
lists the ones it tolerates in `mvemu_notes` (regular expressions; each removes at most one matching
line) and they are removed before the comparison (tests that need a note check for it themselves). Any other difference fails the test with a readable
diff.
"""
from __future__ import annotations

import difflib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "guest_images" / "build"

# The environment every case runs with unless it says otherwise. LC_ALL=C keeps glibc away from
# locale archives and gconv modules; HOME points nowhere so that no user start-up file is read.
BASE_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent"}

DEFAULT_TIMEOUT = 60.0
_NOSYS_LINE = r"mvemu: unimplemented system call {name} \(\d+\): returning -ENOSYS"


def nosys(*names: str) -> tuple[str, ...]:
    """`mvemu_notes` patterns for the once-per-syscall 'unimplemented system call' reports."""
    return tuple(_NOSYS_LINE.format(name=re.escape(n)) for n in names)


def mvemu_command(prog: str, args, options=()) -> list:
    return [sys.executable, "-m", "hvm", "run", *options, prog, *args]


@dataclass
class Case:
    """One program run to compare. `prog` is passed verbatim as argv[0] (and as the path to run)."""
    prog: str
    args: tuple = ()
    stdin: bytes | None = None          # None: stdin is /dev/null
    env: dict | None = None             # None: BASE_ENV; otherwise the complete environment
    files: dict = field(default_factory=dict)   # relative path -> bytes (a file) or None (a dir)
    umask: int = 0o022
    timeout: float = DEFAULT_TIMEOUT
    mvemu_notes: tuple = ()             # regexes of tolerated extra `mvemu:` stderr lines
    mvemu_options: tuple = ()           # e.g. ("--mem", "256M")
    stdout_file: str | None = None      # send stdout to this file in the work dir instead of a pipe
    unordered_stdout: bool = False      # compare stdout as a sorted list of lines (a racy program)
    stdin_file: str | None = None       # stdin from this (prepared) file in the work dir: seekable
    id: str = ""

    def __post_init__(self):
        self.args = tuple(self.args)
        if not self.id:
            self.id = " ".join([os.path.basename(self.prog), *map(_show_arg, self.args)]).replace(f"{BUILD}/", "")
            if self.stdin_file:
                self.id += f" <{self.stdin_file}"
            if self.stdout_file:
                self.id += f" >{self.stdout_file}"

    def argv_for(self, work: Path) -> list:
        """Arguments with `{work}` replaced by the work directory's absolute path."""
        return [a.replace("{work}", str(work)) if isinstance(a, str) else a for a in self.args]


def _show_arg(a) -> str:
    if isinstance(a, bytes):
        a = a.decode(errors="backslashreplace")
    return repr(a) if (a == "" or " " in a) else a


@dataclass
class Result:
    stdout: bytes
    stderr: bytes
    status: int                  # shell convention: 128+N for a death by signal N
    signal: int | None           # the signal that killed the native process, if any
    files: dict
    timed_out: bool = False


def _snapshot(root: Path) -> dict:
    """{relative path: description} of everything under root (without following symlinks)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(mode))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", oct(mode), st.st_size, p.read_bytes())
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def _prepare(work: Path, files: dict) -> None:
    if work.exists() or work.is_symlink():
        _wipe(work)
    work.mkdir(parents=True)
    for rel, content in sorted(files.items()):
        p = work / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)


def _wipe(work: Path) -> None:
    # Programs may leave read-only directories behind: make everything writable first.
    for dirpath, dirnames, _ in os.walk(work):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                p.chmod(0o755)
    work.chmod(0o755)
    shutil.rmtree(work)


def _run(cmd: list, case: Case, work: Path) -> Result:
    env = {k: v.replace("{work}", str(work)) for k, v in (BASE_ENV if case.env is None else case.env).items()}
    out = open(work / case.stdout_file, "wb") if case.stdout_file else subprocess.PIPE
    inp = open(work / case.stdin_file, "rb") if case.stdin_file else None
    try:
        p = subprocess.run(cmd, cwd=work, env=env, umask=case.umask, timeout=case.timeout, input=case.stdin,
                           stdin=inp or (None if case.stdin is not None else subprocess.DEVNULL),
                           stdout=out, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired as e:
        return Result(e.stdout or b"", e.stderr or b"", -1, None, _snapshot(work), timed_out=True)
    finally:
        for f in (out, inp):
            if f not in (None, subprocess.PIPE):
                f.close()
    rc, sig = p.returncode, None
    if rc < 0:
        sig, rc = -rc, 128 - rc
    return Result(p.stdout or b"", p.stderr, rc, sig, _snapshot(work))


def run_native(case: Case, work: Path) -> Result:
    _prepare(work, case.files)
    return _run([case.prog, *case.argv_for(work)], case, work)


def run_mvemu(case: Case, work: Path) -> Result:
    _prepare(work, case.files)
    return _run(mvemu_command(case.prog, case.argv_for(work), case.mvemu_options), case, work)


# -- comparison -----------------------------------------------------------------------------------
_MAX_DIFF_LINES = 60


def _text(b: bytes) -> list[str]:
    return b.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)


def bytes_diff(name: str, native: bytes, mvemu: bytes) -> str:
    """A readable description of how two byte strings differ."""
    if _is_binary(native) or _is_binary(mvemu):
        i = next((i for i, (a, b) in enumerate(zip(native, mvemu)) if a != b), min(len(native), len(mvemu)))
        return (f"{name} differs (binary): native {len(native)} bytes, mvemu {len(mvemu)} bytes, "
                f"first difference at offset {i}: native {native[i:i + 16]!r} mvemu {mvemu[i:i + 16]!r}")
    lines = list(difflib.unified_diff(_text(native), _text(mvemu), f"{name} (native)", f"{name} (mvemu)", n=2))
    lines = [ln if ln.endswith("\n") else ln + "\\ (no newline at end)\n" for ln in lines]
    if len(lines) > _MAX_DIFF_LINES:
        lines = lines[:_MAX_DIFF_LINES] + [f"... ({len(lines) - _MAX_DIFF_LINES} more diff lines)\n"]
    return f"{name} differs:\n" + "".join(lines)


def _is_binary(b: bytes) -> bool:
    return b"\0" in b or (bool(b) and b.decode("utf-8", errors="replace").count("\ufffd") > len(b) // 20)


def files_diff(native: dict, mvemu: dict) -> str:
    out = []
    for rel in sorted(set(native) | set(mvemu)):
        a, b = native.get(rel), mvemu.get(rel)
        if a == b:
            continue
        if a is None:
            out.append(f"  {rel}: only after the mvemu run ({_describe(b)})")
        elif b is None:
            out.append(f"  {rel}: only after the native run ({_describe(a)})")
        elif a[0] == b[0] == "file" and a[1:3] == b[1:3]:
            out.append("  " + bytes_diff(f"{rel} contents", a[3], b[3]).replace("\n", "\n    "))
        else:
            out.append(f"  {rel}: native {_describe(a)}, mvemu {_describe(b)}")
    return "files left in the work directory differ:\n" + "\n".join(out) if out else ""


def _describe(entry) -> str:
    if entry[0] == "file":
        return f"file mode {entry[1]} size {entry[2]}"
    return " ".join(map(str, entry))


def split_notes(stderr: bytes, patterns) -> tuple[bytes, list[str], list[str]]:
    """Remove one line per pattern from mvemu's stderr. Returns (rest, removed lines, patterns that
    matched no line)."""
    lines = stderr.splitlines(keepends=True)
    removed, missing = [], []
    for pat in patterns:
        rx = re.compile(pat)
        for i, ln in enumerate(lines):
            if rx.fullmatch(ln.decode(errors="replace").rstrip("\n")):
                removed.append(lines.pop(i).decode(errors="replace").rstrip("\n"))
                break
        else:
            missing.append(pat)
    return b"".join(lines), removed, missing


def compare(case: Case, native: Result, mvemu: Result) -> list[str]:
    """Every difference between the two runs, as readable paragraphs (empty: they agree)."""
    problems = []
    if native.timed_out:
        problems.append(f"the native run timed out after {case.timeout}s (the case is too big)")
    if mvemu.timed_out:
        problems.append(f"the mvemu run timed out after {case.timeout}s")
    m_err, _, _ = split_notes(mvemu.stderr, case.mvemu_notes)
    if native.signal is not None:
        name = signal.Signals(native.signal).name
        lines = m_err.splitlines(keepends=True)
        notes = [ln for ln in lines if ln.startswith(b"mvemu: ")]
        if len(notes) != 1:
            problems.append(f"native run died by {name}: mvemu should print exactly one 'mvemu: ' line "
                            f"naming it, printed {len(notes)}: {[n.decode(errors='replace') for n in notes]}")
        else:
            if name.encode() not in notes[0]:
                problems.append(f"mvemu's death line does not name {name}: {notes[0].decode(errors='replace')!r}")
            lines.remove(notes[0])
            m_err = b"".join(lines)
    if native.status != mvemu.status and not mvemu.timed_out:
        how = f" (killed by {signal.Signals(native.signal).name})" if native.signal else ""
        problems.append(f"exit status differs: native {native.status}{how}, mvemu {mvemu.status}")
    n_out, m_out = native.stdout, mvemu.stdout
    if case.unordered_stdout:
        n_out, m_out = (b"".join(sorted(o.splitlines(keepends=True))) for o in (n_out, m_out))
    if n_out != m_out:
        problems.append(bytes_diff("stdout" + (" (lines sorted)" if case.unordered_stdout else ""), n_out, m_out))
    if native.stderr != m_err:
        problems.append(bytes_diff("stderr", native.stderr, m_err))
    fd = files_diff(native.files, mvemu.files)
    if fd:
        problems.append(fd)
    return problems


def check(case: Case, work: Path) -> tuple[Result, Result]:
    """Run `case` both ways in `work` and fail the test with a readable report if they differ."""
    import pytest
    if not os.access(case.prog, os.X_OK):
        pytest.fail(f"{case.prog} does not exist or is not executable (is guest_images built?)", pytrace=False)
    native = run_native(case, work)
    mvemu = run_mvemu(case, work)
    _wipe(work)
    problems = compare(case, native, mvemu)
    if problems:
        cmd = " ".join(map(_show_arg, [case.prog, *case.argv_for(work)]))
        pytest.fail(f"mvemu differs from native Linux for: {cmd}  (cwd {work})\n\n" + "\n\n".join(problems),
                    pytrace=False)
    return native, mvemu
