"""mvemu's GDB Remote Serial Protocol stub (`mvemu run --gdb PORT`), in layers as in pygdbstub:

    packets.py    framing, checksums, escaping, run-length encoding (bytes only)
    protocol.py   one gdb session: the packet table (QEMU's gdbstub shape) over a Target
    interface.py  the Target interface, stop events and resume actions
    regs.py       the registers gdb sees and the target description XML
    target.py     the Target over the machine: threads, registers, memory, breakpoints, stepping
    monitor.py    `monitor` commands: page walks, physical memory, HVM state, tracing
    server.py     the socket, Ctrl-C, and the stub's hooks in the machine's run loop

docs/gdb.md is the user's guide.
"""
