"""The guest ABI of the HVM: every number guest code and the VMM must agree on (DESIGN.md section 8).

This module is the one source of truth. `aerokernel/include/hvm_abi.h`, which the AeroKernel and
the Multiverse runtime include, is generated from it (`python -m hvm.abi > ...`, done by the
aerokernel build), and a test fails if the two differ. The toolchain (`mvemu hybridize`) imports it
too, for the format of fat binaries.
"""
from __future__ import annotations

# -- hypercalls ------------------------------------------------------------------------------------
# `out %eax, (%dx)` with DX = HVM_PORT, EAX = number; arguments in RDI, RSI, RCX, R8; result in RAX
# (a negative errno on failure). Numbers follow Palacios' HVM where it has the call.
HVM_PORT = 0xF00D

HYPERCALLS = {
    # name: (number, side that may issue it: "ros", "hrt" or "any", what it does)
    "RESET_ROS": (0x01, "ros", "reset the ROS (unsupported: -ENOSYS)"),
    "RESET_HRT": (0x02, "ros", "reset the HRT: stop its vCPUs, clear its memory, forget the image"),
    "RESET_BOTH": (0x03, "ros", "reset both (unsupported: -ENOSYS)"),
    "INSTALL_IMAGE": (0x08, "ros", "install an AeroKernel ELF image: rdi = guest address, rsi = length"),
    "GET_STATE": (0x0F, "any", "HVM state: bit 0 image installed, bit 1 HRT booted, bit 2 merged"),
    "INVOKE_FUNC": (0x20, "ros", "start a function on the HRT: rdi = address, rsi = argument"),
    "INVOKE_FUNC_SYNC": (0x21, "ros", "run a function on the HRT and wait: rdi = address, rsi = argument"),
    "MERGE": (0x30, "ros", "merge the calling process's lower half (rdi = its CR3) into the HRT"),
    "UNMERGE": (0x31, "ros", "clear the HRT's lower half"),
    "MERGE_DONE": (0x3F, "hrt", "the HRT acknowledges a merge"),
    "SIGNAL_INSTALL": (0x40, "ros", "install the ROS-side signal entry for HRT events"),
    "SIGNAL_RAISE": (0x41, "hrt", "raise a signal in the ROS process"),
    # mvemu's own calls
    "BOOT_HRT": (0x80, "ros", "boot the installed image on every HRT vCPU"),
    "CONSOLE_WRITE": (0x81, "hrt", "write to mvemu's stderr: rdi = virtual address, rsi = length"),
    "HRT_READY": (0x82, "hrt", "the AeroKernel on this vCPU is up and enters its event loop"),
    "HRT_EXCEPTION": (0x83, "hrt", "report an exception: rdi = vector, rsi = rip, rcx = error code, r8 = cr2"),
    "CALL_DONE": (0x84, "hrt", "an invoked function returned: rdi = its result"),
    "WAIT_EVENT": (0x85, "hrt", "the next work kind in the mask rsi (0: any), mailbox filled; or 0: none "
                                "yet: then `sti; hlt` stops the vCPU until work is queued (IF=0 hlt: for good)"),
    "SELFTEST": (0x86, "hrt", "a self-test result: rdi = test id, rsi = 0 pass / else fail code"),
    # split execution (Multiverse): threads, event channels, merge upkeep
    "CREATE_THREAD": (0x50, "ros", "start a top-level HRT thread: rdi = struct hvm_ioc_thread (from the partner)"),
    "POST_EVENT": (0x51, "hrt", "an event is posted on a channel: rdi = the channel's virtual address, rsi = its "
                                "kind, rcx = POST_WAIT to wait for it at once: then as WAIT_EVENT with the mask r8, "
                                "and after a 0 the completion resumes the halted vCPU without a WAKE"),
    "COMPLETE_EVENT": (0x52, "ros", "the partner completed the event on a channel: rdi = its virtual address"),
    "REMERGE": (0x32, "hrt", "copy the merged process's lower-half PML4 entries again (repeated fault)"),
    "TLB_SHOOTDOWN": (0x33, "ros", "the merged address space changed: flush every HRT vCPU's TLB"),
    "KICK": (0x87, "hrt", "wake HRT vCPU rdi if it waits for work (a thread was queued on it)"),
    # subtractive porting (`mvemu run --hrt-local`): what the AeroKernel needs to serve calls itself
    "LOCAL_CLOCK": (0x88, "hrt", "the host clock (a paravirtual clock): rdi = Linux clock id; returns "
                    "nanoseconds, or -EINVAL for a clock only the ROS keeps (CPU time)"),
    "LOCAL_WRITE": (0x89, "hrt", "write to the console: rdi = fd (1 or 2), rsi = address, rcx = length, r8 = "
                    "the partner's pid; returns the count, or -EAGAIN when that fd is not mvemu's own stdout/stderr"),
    "LOCAL_SYSCALL": (0x8A, "hrt", "a system call the AeroKernel served itself, for --trace/--stats "
                      "(only with HVM_LOCAL_ACCOUNT): rdi = number, rsi = result, rcx = thread, "
                      "r8 = its first argument"),
    # nested threads (paper III-D): created from HRT code, in the creator's execution group
    "NESTED_THREAD": (0x8B, "hrt", "a nested thread was created, for --trace/--stats: rdi = its id, rsi = its "
                      "creator's, rcx = its vCPU, r8 = the group's channel"),
}
HC = {name: number for name, (number, _side, _doc) in HYPERCALLS.items()}

# -- memory layout ---------------------------------------------------------------------------------
HIGH_BASE = 0xFFFF_8000_0000_0000       # HRT higher-half identity map: physical P at HIGH_BASE + P
LOWER_HALF_END = 0x0000_8000_0000_0000  # the merged (ROS) half ends here: program code runs below
KERNEL_VBASE = 0xFFFF_FFFF_8000_0000    # the AeroKernel is linked here (-mcmodel=kernel)
BOOT_STACK_SIZE = 0x4000                # per HRT vCPU, in HRT memory

# -- boot info (RDI of every HRT vCPU at entry; guest-physical, read via HIGH_BASE) ----------------
BOOT_INFO_MAGIC = 0x4D56_454D_5542_4F4F   # "OOBUMEVM"
BOOT_INFO_FIELDS = (                       # each a u64, in this order
    "magic", "cpu_id", "num_cpus", "hrt_base", "hrt_size", "ros_base", "ros_size",
    "high_base", "kernel_vbase", "image_pbase", "image_size", "free_pbase", "free_size",
    "boot_stack_top", "mailbox_pbase",
    "local_syscalls",                       # HVM_LOCAL_* bits: the calls this AeroKernel serves itself
)

# -- work for an HRT vCPU: WAIT_EVENT returns one of these in RAX, details in the vCPU's mailbox ----
MAILBOX_FIELDS = ("kind", "func", "arg", "result",    # u64 each, at boot_info.mailbox_pbase
                  "arg1", "arg2", "stack", "fs_base", "channel", "thread",
                  "pid", "tid")     # a top-level thread's partner: its process id and thread id
WORK = {"NONE": 0, "CALL": 1, "SELFTEST": 2, "HALT": 3,
        "THREAD": 4,        # start a top-level thread: func(arg, arg1, arg2) on stack, with fs_base, channel
        "WAKE": 5,          # an event this vCPU posted was completed (or other work may be queued)
        }

POST_WAIT = 1                   # POST_EVENT's flag (rcx): the poster halts until the completion
PREEMPT_VECTOR = 32             # the VMM's time-slice interrupt to an HRT vCPU running program code with IF set

# -- event channels (DESIGN.md section 8): one record per execution group, in the partner's memory ----
# Both sides see it at the same virtual address (the lower half is merged). The HRT fills it and
# posts (state POSTED, hypercall POST_EVENT); the partner takes it (TAKEN), does the work, writes the
# result and completes it (COMPLETED, COMPLETE_EVENT through /dev/hvm); the HRT thread resumes.
EVENT_FIELDS = ("kind", "state", "nr", "a0", "a1", "a2", "a3", "a4", "a5", "result",
                "addr", "error", "rip", "vector", "thread", "seq",
                # the HRT thread's registers at a syscall (a fork child continues from them)
                "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
                "r12", "r13", "r14", "r15", "rflags",
                # set by the child of a forwarded thread clone once it has read the registers above
                # (the partner must not let the record be reused before: the memory is shared)
                "child_ready")
EVENT_KIND = {"NONE": 0, "SYSCALL": 1, "PAGE_FAULT": 2, "EXCEPTION": 3, "THREAD_EXIT": 4}
EVENT_STATE = {"FREE": 0, "POSTED": 1, "TAKEN": 2, "COMPLETED": 3}
# A system call number no Linux uses: HRT code returning from a top-level thread's function lands
# on the runtime's trampoline, which issues it; the AeroKernel ends the thread (THREAD_EXIT event).
HRT_SYS_THREAD_EXIT = 0x4D56
# Another: HRT code asking its partner to run fn(arg) (rdi, rsi) in a new top-level HRT thread and
# return its result (the runtime's mv_invoke_func, behind the SDK's hrt_invoke_func).
HRT_SYS_INVOKE = 0x4D57

# -- subtractive porting: system calls the AeroKernel may serve itself (`mvemu run --hrt-local`) ----
# name: (bit in boot_info.local_syscalls, x86-64 system call number)
LOCAL_SYSCALLS = {"getpid": (0, 39), "gettid": (1, 186), "clock_gettime": (2, 228),
                  "gettimeofday": (3, 96), "time": (4, 201), "write": (5, 1)}
LOCAL_ACCOUNT = 1 << 63     # also tell the VMM about each one (LOCAL_SYSCALL), for --trace/--stats
LOCAL_CLOCKS = (0, 1, 4, 5, 6, 7)   # REALTIME, MONOTONIC, _RAW, REALTIME_COARSE, MONOTONIC_COARSE, BOOTTIME

# -- the ROS's door to the HVM: /dev/hvm ---------------------------------------------------------
# A ROS program never issues hypercalls itself (ring 3 cannot); it asks the ROS kernel through this
# device, and the kernel issues the hypercall (as Palacios' ROS module did).
ROS_DEVICE = "/dev/hvm"
ROS_IOCTLS = {                  # name: (request number, argument)
    "INSTALL": (0x4801, "struct hvm_ioc_image *: the AeroKernel ELF in the caller's memory"),
    "BOOT": (0x4802, "none"),
    "INVOKE_SYNC": (0x4803, "struct hvm_ioc_call *: func and arg in, result out; blocks the caller"),
    "STATE": (0x4804, "none; returns the GET_STATE bits"),
    "RESET": (0x4805, "none: reset the HRT"),
    "SELFTEST": (0x4806, "none; runs the AeroKernel self-tests, returns the number that failed"),
    "MERGE": (0x4807, "none: merge the caller's address space into the HRT"),
    "CREATE_THREAD": (0x4808, "struct hvm_ioc_thread *: start a top-level HRT thread; returns its id"),
    "WAIT_EVENT": (0x4809, "the channel's address: block until the HRT posts there; returns the kind"),
    "COMPLETE_WAIT": (0x480A, "the channel's address: complete the taken event, then wait as WAIT_EVENT"),
    "INVOKE": (0x480B, "struct hvm_ioc_call *: func and arg in; starts func(arg) on the HRT and returns at "
                       "once (an asynchronous call: its result is not reported)"),
}
THREAD_IOC_FIELDS = ("func", "arg0", "arg1", "arg2", "stack", "fs_base", "channel", "cpu")

# -- CPU state at HRT entry (Palacios convention, DESIGN.md section 8) -----------------------------
HRT_CR0 = 0x8001_0033                   # PG | WP | NE | ET | MP | PE
CR0_WP = 1 << 16
HRT_CR4 = 0x0000_0620                   # PAE | OSFXSR | OSXMMEXCPT (SMEP, SMAP off)
HRT_EFER = 0xD01                        # SCE | LME | LMA | NXE
HRT_KERNEL_CS = 0x08
HRT_KERNEL_DS = 0x10

# -- what a debugger needs to find the AeroKernel's threads (hvm/gdbstub/aerokernel.py) -----------
# The AeroKernel exports `struct hvm_debug_info` under the symbol below (aerokernel/thread.c), as
# Zephyr exports _kernel_thread_info_offsets for RTOS-aware debuggers: where its thread tables are
# and the layout of `struct thread`, so the VMM's gdb stub shows every HRT thread without
# hard-coding the kernel's private structures. The stub reads it through the HRT's page tables.
DEBUG_INFO_SYMBOL = "hvm_debug_info"
DEBUG_INFO_MAGIC = 0x3147_4244_4E52_4B41   # "AKRNDBG1"
DEBUG_INFO_FIELDS = {                      # each a u64, in this order
    "magic": "DEBUG_INFO_MAGIC",
    "max_cpus": "entries of current[] and idle[]",
    "current": "&current[0]: struct thread *current[max_cpus], the thread each vCPU runs",
    "idle": "&idle_threads[0]: each vCPU's idle thread (its boot context and work loop)",
    "threads": "&threads[0]: every other thread (kernel and program threads)",
    "max_threads": "entries of threads[]",
    "thread_size": "sizeof(struct thread)",
    "off_rsp": "offsetof(struct thread, rsp), u64: the saved RSP of a thread switched out",
    "off_id": "offsetof(struct thread, id), u32: a program thread's id is the VMM's",
    "off_state": "offsetof(struct thread, state), u32",
    "off_cpu": "offsetof(struct thread, cpu), u32: the vCPU whose run queue holds it",
    "off_channel": "offsetof(struct thread, channel), u64: 0 for a kernel thread",
    "off_fs_base": "offsetof(struct thread, fs_base), u64: a program thread's FS base",
    "state_free": "enum thread_state values",
    "state_runnable": "",
    "state_running": "",
    "state_blocked": "",
    "state_dead": "",
    "runqueues": "&runqueues[0]: each vCPU's run queue (the VMM preempts a program thread only when its "
                 "vCPU has another thread queued or work for it)",
    "runqueue_size": "sizeof(struct runqueue)",
    "off_rq_head": "offsetof(struct runqueue, head), u64: the first queued thread, 0 when none",
}
# What switch_to (aerokernel/switch.S) leaves at a switched-out thread's saved RSP, one u64 each,
# from the lowest address: its callee-saved registers, then the address it returns to.
SWITCH_FRAME = ("r15", "r14", "r13", "r12", "rbx", "rbp", "rip")

# -- fat binaries: what `mvemu hybridize` adds to a program (toolchain/, docs/hybridize.md) -------
# The Multiverse runtime reads `struct mv_config`, which the toolchain fills in in the output file.
# Its offsets are relative to the structure's own address, so they hold wherever the program is
# loaded (ET_EXEC or PIE). Tools find the same facts in an ELF note (PT_NOTE).
FAT_VERSION = 1
FAT_CONFIG_MAGIC = 0x4749_464E_4F43_564D   # "MVCONFIG"
FAT_CONFIG_FIELDS = {                      # each a u64, in this order
    "magic": '"MVCONFIG" (MV_CONFIG_MAGIC)',
    "version": "the format's version (MV_FAT_VERSION)",
    "main_off": "the program's original main minus &mv_config (signed)",
    "image_off": "the embedded AeroKernel ELF file minus &mv_config (signed)",
    "image_len": "its length in bytes",
    "flags": "reserved, 0",
}
FAT_NOTE_NAME = "Multiverse"
FAT_NOTE_TYPE = 0x4D56                     # "MV"
FAT_NOTE_FIELDS = {                        # the note's descriptor: each a u64, in this order
    "version": "the format's version (FAT_VERSION)",
    "main": "the original main (link-time address)",
    "runtime_entry": "mv_main, which _start now hands to __libc_start_main (link-time address)",
    "config": "&mv_config (link-time address)",
    "image_offset": "file offset of the embedded AeroKernel ELF",
    "image_len": "its length in bytes",
    "flags": "mv_config.flags",
}


def header() -> str:
    """The C header for guest code (aerokernel/include/hvm_abi.h)."""
    out = ["/* Generated from hvm/abi.py by `python -m hvm.abi`: do not edit. */",
           "#ifndef MVEMU_HVM_ABI_H", "#define MVEMU_HVM_ABI_H", "",
           f"#define HVM_PORT 0x{HVM_PORT:x}", ""]
    for name, (number, side, doc) in HYPERCALLS.items():
        out.append(f"#define HVM_HC_{name} 0x{number:02x}  /* {side}: {doc} */")
    out += ["",
            f"#define HVM_HIGH_BASE 0x{HIGH_BASE:x}UL",
            f"#define HVM_KERNEL_VBASE 0x{KERNEL_VBASE:x}UL",
            f"#define HVM_BOOT_STACK_SIZE 0x{BOOT_STACK_SIZE:x}",
            f"#define HVM_BOOT_INFO_MAGIC 0x{BOOT_INFO_MAGIC:x}UL",
            f"#define HVM_KERNEL_CS 0x{HRT_KERNEL_CS:x}",
            f"#define HVM_KERNEL_DS 0x{HRT_KERNEL_DS:x}",
            ""]
    out += [f"#define HVM_WORK_{name} {value}" for name, value in WORK.items()]
    out += [f"#define HVM_POST_WAIT {POST_WAIT}", f"#define HVM_PREEMPT_VECTOR {PREEMPT_VECTOR}"]
    out += [f"#define HVM_EVENT_{name} {value}" for name, value in EVENT_KIND.items()]
    out += [f"#define HVM_EVENT_{name} {value}" for name, value in EVENT_STATE.items()]
    out += [f"#define HVM_EVOFF_{f.upper()} {8 * i}" for i, f in enumerate(EVENT_FIELDS)]
    out += [f"#define HVM_LOCAL_{name.upper()} (1UL << {bit})  /* system call {nr} */"
            for name, (bit, nr) in LOCAL_SYSCALLS.items()]
    out += [f"#define HVM_LOCAL_ACCOUNT (1UL << {LOCAL_ACCOUNT.bit_length() - 1})"]
    out += [f"#define HVM_HRT_SYS_THREAD_EXIT 0x{HRT_SYS_THREAD_EXIT:x}",
            f"#define HVM_HRT_SYS_INVOKE 0x{HRT_SYS_INVOKE:x}"]
    out += ["", f'#define HVM_ROS_DEVICE "{ROS_DEVICE}"']
    out += [f"#define HVM_IOC_{name} 0x{number:x}  /* {doc} */" for name, (number, doc) in ROS_IOCTLS.items()]
    out += ["", f"#define MV_FAT_VERSION {FAT_VERSION}",
            f"#define MV_CONFIG_MAGIC 0x{FAT_CONFIG_MAGIC:x}UL",
            f'#define MV_NOTE_NAME "{FAT_NOTE_NAME}"',
            f"#define HVM_DEBUG_INFO_MAGIC 0x{DEBUG_INFO_MAGIC:x}UL",
            f"#define MV_NOTE_TYPE 0x{FAT_NOTE_TYPE:x}"]
    out += ["", "#ifndef __ASSEMBLER__", "struct hvm_boot_info {"]
    out += [f"    unsigned long {f};" for f in BOOT_INFO_FIELDS]
    out += ["};", "", "struct hvm_ioc_image { unsigned long addr, len; };",
            "struct hvm_ioc_call { unsigned long func, arg, result; };", "", "struct hvm_ioc_thread {"]
    out += [f"    unsigned long {f};" for f in THREAD_IOC_FIELDS]
    out += ["};", "", "struct hvm_mailbox {"]
    out += [f"    unsigned long {f};" for f in MAILBOX_FIELDS]
    out += ["};", "", "struct hvm_event {"]
    out += [f"    volatile unsigned long {f};" for f in EVENT_FIELDS]
    out += ["};", "", "/* For debuggers: where the AeroKernel's threads are (exported as "
            f"{DEBUG_INFO_SYMBOL}). */", "struct hvm_debug_info {"]
    out += [f"    unsigned long {f};" + (f"  /* {doc} */" if doc else "") for f, doc in DEBUG_INFO_FIELDS.items()]
    out += ["};", "", "/* A fat binary's configuration, filled in by `mvemu hybridize`. */", "struct mv_config {"]
    out += [f"    unsigned long {f};  /* {doc} */" for f, doc in FAT_CONFIG_FIELDS.items()]
    out += ["};", "#endif", "", "#endif", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(header(), end="")
