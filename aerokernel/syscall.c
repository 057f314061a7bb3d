/* System calls issued by code on an HRT vCPU.
 *
 * A top-level program thread forwards every system call to its partner in the ROS over its
 * event channel (events.c), except the thread-exit call of the runtime's return trampoline and
 * SYS_exit, which end the thread, and those it was asked to serve itself (local.c). Kernel threads (no channel) get the small local table. */
#include "cpu.h"
#include "events.h"
#include "thread.h"
#include "kernel.h"
#include "memlayout.h"
#include "syscall.h"
#include "x86.h"

struct syscall_percpu syscall_percpu[MAX_CPUS] __attribute__((aligned(64)));

typedef long (*syscall_fn)(struct syscall_frame *f);

static long sys_getpid(struct syscall_frame *f)
{
    (void)f;
    return AEROKERNEL_PID;
}

static const syscall_fn syscall_table[] = {
    [SYS_getpid] = sys_getpid,
};

#define SYS_arch_prctl  158
#define SYS_exit        60
#define ARCH_SET_FS     0x1002
#define MSR_FS_BASE     0xC0000100u

void syscall_dispatch(struct syscall_frame *f)
{
    struct cpu *c = this_cpu();
    unsigned long nr = f->rax;
    c->syscalls++;
    struct thread *t = thread_current();
    if (t->channel) {
        if (nr == HVM_HRT_SYS_THREAD_EXIT || nr == SYS_exit)
            event_thread_exit(t, (long)f->rdi, nr == SYS_exit);
        if (local_syscall(t, f))
            return;                         /* served here (--hrt-local): subtractive porting */
        f->rax = event_syscall(t, f);
        if (nr == SYS_arch_prctl && f->rdi == ARCH_SET_FS && f->rax == 0) {
            t->fs_base = f->rsi;            /* the partner's FS base moved: superpose it again */
            wrmsr(MSR_FS_BASE, t->fs_base);
        }
        return;
    }
    if (nr < ARRAY_SIZE(syscall_table) && syscall_table[nr]) {
        f->rax = syscall_table[nr](f);
    } else {
        c->syscalls_unknown++;
        f->rax = -ENOSYS;
    }
}

void syscall_init_cpu(struct cpu *c)
{
    syscall_percpu[c->id].stack_top = c->stack_top[KSTACK_SLOT_SYSCALL];
    uint64_t efer = rdmsr(MSR_EFER);
    if (!(efer & EFER_SCE))
        wrmsr(MSR_EFER, efer | EFER_SCE);
    /* STAR[47:32]: CS on SYSCALL (SS = +8); STAR[63:48]: the SYSRET base (unused here, Linux's
     * value, so that a SYSRET would land on 0x33 / 0x2b). */
    wrmsr(MSR_STAR, ((uint64_t)GDT_USER32_CS << 48) | ((uint64_t)GDT_KCODE << 32));
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entries + c->id * SYSCALL_ENTRY_STRIDE);
    /* Cleared on entry: TF (no single-stepping into the kernel), DF (the C ABI), IF, IOPL, NT,
     * AC -- Linux's mask. */
    wrmsr(MSR_FMASK, RFLAGS_TF | RFLAGS_DF | RFLAGS_IF | RFLAGS_IOPL | RFLAGS_NT | RFLAGS_AC);
}
