/* Generated from hvm/abi.py by `python -m hvm.abi`: do not edit. */
#ifndef MVEMU_HVM_ABI_H
#define MVEMU_HVM_ABI_H

#define HVM_PORT 0xf00d

#define HVM_HC_RESET_ROS 0x01  /* ros: reset the ROS (unsupported: -ENOSYS) */
#define HVM_HC_RESET_HRT 0x02  /* ros: reset the HRT: stop its vCPUs, clear its memory, forget the image */
#define HVM_HC_RESET_BOTH 0x03  /* ros: reset both (unsupported: -ENOSYS) */
#define HVM_HC_INSTALL_IMAGE 0x08  /* ros: install an AeroKernel ELF image: rdi = guest address, rsi = length */
#define HVM_HC_GET_STATE 0x0f  /* any: HVM state: bit 0 image installed, bit 1 HRT booted, bit 2 merged */
#define HVM_HC_INVOKE_FUNC 0x20  /* ros: start a function on the HRT: rdi = address, rsi = argument */
#define HVM_HC_INVOKE_FUNC_SYNC 0x21  /* ros: run a function on the HRT and wait: rdi = address, rsi = argument */
#define HVM_HC_MERGE 0x30  /* ros: merge the calling process's lower half (rdi = its CR3) into the HRT */
#define HVM_HC_UNMERGE 0x31  /* ros: clear the HRT's lower half */
#define HVM_HC_MERGE_DONE 0x3f  /* hrt: the HRT acknowledges a merge */
#define HVM_HC_SIGNAL_INSTALL 0x40  /* ros: install the ROS-side signal entry for HRT events */
#define HVM_HC_SIGNAL_RAISE 0x41  /* hrt: raise a signal in the ROS process */
#define HVM_HC_BOOT_HRT 0x80  /* ros: boot the installed image on every HRT vCPU */
#define HVM_HC_CONSOLE_WRITE 0x81  /* hrt: write to mvemu's stderr: rdi = virtual address, rsi = length */
#define HVM_HC_HRT_READY 0x82  /* hrt: the AeroKernel on this vCPU is up and enters its event loop */
#define HVM_HC_HRT_EXCEPTION 0x83  /* hrt: report an exception: rdi = vector, rsi = rip, rcx = error code, r8 = cr2 */
#define HVM_HC_CALL_DONE 0x84  /* hrt: an invoked function returned: rdi = its result */
#define HVM_HC_WAIT_EVENT 0x85  /* hrt: the next work kind in the mask rsi (0: any), mailbox filled; or 0: none yet: then `sti; hlt` stops the vCPU until work is queued (IF=0 hlt: for good) */
#define HVM_HC_SELFTEST 0x86  /* hrt: a self-test result: rdi = test id, rsi = 0 pass / else fail code */
#define HVM_HC_CREATE_THREAD 0x50  /* ros: start a top-level HRT thread: rdi = struct hvm_ioc_thread (from the partner) */
#define HVM_HC_POST_EVENT 0x51  /* hrt: an event is posted on a channel: rdi = the channel's virtual address, rsi = its kind, rcx = POST_WAIT to wait for it at once: then as WAIT_EVENT with the mask r8, and after a 0 the completion resumes the halted vCPU without a WAKE */
#define HVM_HC_COMPLETE_EVENT 0x52  /* ros: the partner completed the event on a channel: rdi = its virtual address */
#define HVM_HC_REMERGE 0x32  /* hrt: copy the merged process's lower-half PML4 entries again (repeated fault) */
#define HVM_HC_TLB_SHOOTDOWN 0x33  /* ros: the merged address space changed: flush every HRT vCPU's TLB */
#define HVM_HC_KICK 0x87  /* hrt: wake HRT vCPU rdi if it waits for work (a thread was queued on it) */
#define HVM_HC_LOCAL_CLOCK 0x88  /* hrt: the host clock (a paravirtual clock): rdi = Linux clock id; returns nanoseconds, or -EINVAL for a clock only the ROS keeps (CPU time) */
#define HVM_HC_LOCAL_WRITE 0x89  /* hrt: write to the console: rdi = fd (1 or 2), rsi = address, rcx = length, r8 = the partner's pid; returns the count, or -EAGAIN when that fd is not mvemu's own stdout/stderr */
#define HVM_HC_LOCAL_SYSCALL 0x8a  /* hrt: a system call the AeroKernel served itself, for --trace/--stats (only with HVM_LOCAL_ACCOUNT): rdi = number, rsi = result, rcx = thread, r8 = its first argument */
#define HVM_HC_NESTED_THREAD 0x8b  /* hrt: a nested thread was created, for --trace/--stats: rdi = its id, rsi = its creator's, rcx = its vCPU, r8 = the group's channel */

#define HVM_HIGH_BASE 0xffff800000000000UL
#define HVM_KERNEL_VBASE 0xffffffff80000000UL
#define HVM_BOOT_STACK_SIZE 0x4000
#define HVM_BOOT_INFO_MAGIC 0x4d56454d55424f4fUL
#define HVM_KERNEL_CS 0x8
#define HVM_KERNEL_DS 0x10

#define HVM_WORK_NONE 0
#define HVM_WORK_CALL 1
#define HVM_WORK_SELFTEST 2
#define HVM_WORK_HALT 3
#define HVM_WORK_THREAD 4
#define HVM_WORK_WAKE 5
#define HVM_POST_WAIT 1
#define HVM_PREEMPT_VECTOR 32
#define HVM_EVENT_NONE 0
#define HVM_EVENT_SYSCALL 1
#define HVM_EVENT_PAGE_FAULT 2
#define HVM_EVENT_EXCEPTION 3
#define HVM_EVENT_THREAD_EXIT 4
#define HVM_EVENT_FREE 0
#define HVM_EVENT_POSTED 1
#define HVM_EVENT_TAKEN 2
#define HVM_EVENT_COMPLETED 3
#define HVM_EVOFF_KIND 0
#define HVM_EVOFF_STATE 8
#define HVM_EVOFF_NR 16
#define HVM_EVOFF_A0 24
#define HVM_EVOFF_A1 32
#define HVM_EVOFF_A2 40
#define HVM_EVOFF_A3 48
#define HVM_EVOFF_A4 56
#define HVM_EVOFF_A5 64
#define HVM_EVOFF_RESULT 72
#define HVM_EVOFF_ADDR 80
#define HVM_EVOFF_ERROR 88
#define HVM_EVOFF_RIP 96
#define HVM_EVOFF_VECTOR 104
#define HVM_EVOFF_THREAD 112
#define HVM_EVOFF_SEQ 120
#define HVM_EVOFF_RBX 128
#define HVM_EVOFF_RCX 136
#define HVM_EVOFF_RDX 144
#define HVM_EVOFF_RSI 152
#define HVM_EVOFF_RDI 160
#define HVM_EVOFF_RBP 168
#define HVM_EVOFF_RSP 176
#define HVM_EVOFF_R8 184
#define HVM_EVOFF_R9 192
#define HVM_EVOFF_R10 200
#define HVM_EVOFF_R11 208
#define HVM_EVOFF_R12 216
#define HVM_EVOFF_R13 224
#define HVM_EVOFF_R14 232
#define HVM_EVOFF_R15 240
#define HVM_EVOFF_RFLAGS 248
#define HVM_EVOFF_CHILD_READY 256
#define HVM_LOCAL_GETPID (1UL << 0)  /* system call 39 */
#define HVM_LOCAL_GETTID (1UL << 1)  /* system call 186 */
#define HVM_LOCAL_CLOCK_GETTIME (1UL << 2)  /* system call 228 */
#define HVM_LOCAL_GETTIMEOFDAY (1UL << 3)  /* system call 96 */
#define HVM_LOCAL_TIME (1UL << 4)  /* system call 201 */
#define HVM_LOCAL_WRITE (1UL << 5)  /* system call 1 */
#define HVM_LOCAL_ACCOUNT (1UL << 63)
#define HVM_HRT_SYS_THREAD_EXIT 0x4d56
#define HVM_HRT_SYS_INVOKE 0x4d57

#define HVM_ROS_DEVICE "/dev/hvm"
#define HVM_IOC_INSTALL 0x4801  /* struct hvm_ioc_image *: the AeroKernel ELF in the caller's memory */
#define HVM_IOC_BOOT 0x4802  /* none */
#define HVM_IOC_INVOKE_SYNC 0x4803  /* struct hvm_ioc_call *: func and arg in, result out; blocks the caller */
#define HVM_IOC_STATE 0x4804  /* none; returns the GET_STATE bits */
#define HVM_IOC_RESET 0x4805  /* none: reset the HRT */
#define HVM_IOC_SELFTEST 0x4806  /* none; runs the AeroKernel self-tests, returns the number that failed */
#define HVM_IOC_MERGE 0x4807  /* none: merge the caller's address space into the HRT */
#define HVM_IOC_CREATE_THREAD 0x4808  /* struct hvm_ioc_thread *: start a top-level HRT thread; returns its id */
#define HVM_IOC_WAIT_EVENT 0x4809  /* the channel's address: block until the HRT posts there; returns the kind */
#define HVM_IOC_COMPLETE_WAIT 0x480a  /* the channel's address: complete the taken event, then wait as WAIT_EVENT */
#define HVM_IOC_INVOKE 0x480b  /* struct hvm_ioc_call *: func and arg in; starts func(arg) on the HRT and returns at once (an asynchronous call: its result is not reported) */

#define MV_FAT_VERSION 1
#define MV_CONFIG_MAGIC 0x4749464e4f43564dUL
#define MV_NOTE_NAME "Multiverse"
#define HVM_DEBUG_INFO_MAGIC 0x314742444e524b41UL
#define MV_NOTE_TYPE 0x4d56

#ifndef __ASSEMBLER__
struct hvm_boot_info {
    unsigned long magic;
    unsigned long cpu_id;
    unsigned long num_cpus;
    unsigned long hrt_base;
    unsigned long hrt_size;
    unsigned long ros_base;
    unsigned long ros_size;
    unsigned long high_base;
    unsigned long kernel_vbase;
    unsigned long image_pbase;
    unsigned long image_size;
    unsigned long free_pbase;
    unsigned long free_size;
    unsigned long boot_stack_top;
    unsigned long mailbox_pbase;
    unsigned long local_syscalls;
};

struct hvm_ioc_image { unsigned long addr, len; };
struct hvm_ioc_call { unsigned long func, arg, result; };

struct hvm_ioc_thread {
    unsigned long func;
    unsigned long arg0;
    unsigned long arg1;
    unsigned long arg2;
    unsigned long stack;
    unsigned long fs_base;
    unsigned long channel;
    unsigned long cpu;
};

struct hvm_mailbox {
    unsigned long kind;
    unsigned long func;
    unsigned long arg;
    unsigned long result;
    unsigned long arg1;
    unsigned long arg2;
    unsigned long stack;
    unsigned long fs_base;
    unsigned long channel;
    unsigned long thread;
    unsigned long pid;
    unsigned long tid;
};

struct hvm_event {
    volatile unsigned long kind;
    volatile unsigned long state;
    volatile unsigned long nr;
    volatile unsigned long a0;
    volatile unsigned long a1;
    volatile unsigned long a2;
    volatile unsigned long a3;
    volatile unsigned long a4;
    volatile unsigned long a5;
    volatile unsigned long result;
    volatile unsigned long addr;
    volatile unsigned long error;
    volatile unsigned long rip;
    volatile unsigned long vector;
    volatile unsigned long thread;
    volatile unsigned long seq;
    volatile unsigned long rbx;
    volatile unsigned long rcx;
    volatile unsigned long rdx;
    volatile unsigned long rsi;
    volatile unsigned long rdi;
    volatile unsigned long rbp;
    volatile unsigned long rsp;
    volatile unsigned long r8;
    volatile unsigned long r9;
    volatile unsigned long r10;
    volatile unsigned long r11;
    volatile unsigned long r12;
    volatile unsigned long r13;
    volatile unsigned long r14;
    volatile unsigned long r15;
    volatile unsigned long rflags;
    volatile unsigned long child_ready;
};

/* For debuggers: where the AeroKernel's threads are (exported as hvm_debug_info). */
struct hvm_debug_info {
    unsigned long magic;  /* DEBUG_INFO_MAGIC */
    unsigned long max_cpus;  /* entries of current[] and idle[] */
    unsigned long current;  /* &current[0]: struct thread *current[max_cpus], the thread each vCPU runs */
    unsigned long idle;  /* &idle_threads[0]: each vCPU's idle thread (its boot context and work loop) */
    unsigned long threads;  /* &threads[0]: every other thread (kernel and program threads) */
    unsigned long max_threads;  /* entries of threads[] */
    unsigned long thread_size;  /* sizeof(struct thread) */
    unsigned long off_rsp;  /* offsetof(struct thread, rsp), u64: the saved RSP of a thread switched out */
    unsigned long off_id;  /* offsetof(struct thread, id), u32: a program thread's id is the VMM's */
    unsigned long off_state;  /* offsetof(struct thread, state), u32 */
    unsigned long off_cpu;  /* offsetof(struct thread, cpu), u32: the vCPU whose run queue holds it */
    unsigned long off_channel;  /* offsetof(struct thread, channel), u64: 0 for a kernel thread */
    unsigned long off_fs_base;  /* offsetof(struct thread, fs_base), u64: a program thread's FS base */
    unsigned long state_free;  /* enum thread_state values */
    unsigned long state_runnable;
    unsigned long state_running;
    unsigned long state_blocked;
    unsigned long state_dead;
    unsigned long runqueues;  /* &runqueues[0]: each vCPU's run queue (the VMM preempts a program thread only when its vCPU has another thread queued or work for it) */
    unsigned long runqueue_size;  /* sizeof(struct runqueue) */
    unsigned long off_rq_head;  /* offsetof(struct runqueue, head), u64: the first queued thread, 0 when none */
};

/* A fat binary's configuration, filled in by `mvemu hybridize`. */
struct mv_config {
    unsigned long magic;  /* "MVCONFIG" (MV_CONFIG_MAGIC) */
    unsigned long version;  /* the format's version (MV_FAT_VERSION) */
    unsigned long main_off;  /* the program's original main minus &mv_config (signed) */
    unsigned long image_off;  /* the embedded AeroKernel ELF file minus &mv_config (signed) */
    unsigned long image_len;  /* its length in bytes */
    unsigned long flags;  /* reserved, 0 */
};
#endif

#endif
