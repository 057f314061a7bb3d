"""Every memory-layout constant of the ROS in one place (xv6's memlayout.h).

Virtual addresses follow what Linux x86-64 gives a process with ASLR off, so programs see the same
addresses they would under `setarch -R`.
"""
PAGE = 4096

USER_TOP = 0x0000_8000_0000_0000          # first non-canonical lower-half address
STACK_TOP = 0x0000_7FFF_FFFF_F000         # initial stack grows down from here
STACK_SIZE = 8 << 20                      # RLIMIT_STACK default: the stack VMA reserves this much
MMAP_BASE = 0x0000_7FFF_F7FF_F000         # mmap() allocates top-down below here
PIE_BASE = 0x0000_5555_5555_4000          # load base of ET_DYN (static-pie) programs
MIN_MMAP_ADDR = 0x10000                   # vm.mmap_min_addr

# The ROS kernel's own pages live in the upper half, in PML4 slot 511, shared by every process and
# mapped supervisor-only: the GDT, the `iretq` trampoline that enters ring 3, and one page of kernel
# stack per ROS vCPU (with an unmapped guard page below each).
KERNEL_BASE = 0xFFFF_FF80_0000_0000
KERNEL_GDT = KERNEL_BASE + 0x0000
KERNEL_TRAMPOLINE = KERNEL_BASE + 0x1000
KERNEL_STACKS = KERNEL_BASE + 0x10000
MAX_ROS_CPUS = 64


def kernel_stack_top(cpu: int) -> int:
    """The top of ROS vCPU `cpu`'s kernel stack (one page below it is mapped)."""
    return KERNEL_STACKS + 0x2000 * cpu + 0x2000

# GDT selectors, as Linux lays them out (so %cs reads 0x33 in ring 3, as natively).
KERNEL_CS = 0x10
KERNEL_DS = 0x18
USER32_CS = 0x23
USER_DS = 0x2B
USER_CS = 0x33
