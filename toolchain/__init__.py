"""The toolchain: `mvemu hybridize` turns a static program into a fat binary (DESIGN.md section 6,
docs/hybridize.md). It shares only hvm/abi.py with the rest of mvemu.

    cli.py          the command line (hvm/cli.py hands `mvemu hybridize` over to it)
    hybridize.py    the steps: check, find main, place and fill the new segment; --info
    elf.py          reading an ELF executable, with every offset checked
    startpatch.py   finding the load of main in _start (capstone) and redirecting it
    elfedit.py      adding the segment and moving the program headers into it
    fatbinary.py    the formats of struct mv_config and the Multiverse note
    pieces.py       the runtime blob and the AeroKernel image that go in
    runtime/        the Multiverse runtime: guest C code, built by `make images`
"""
