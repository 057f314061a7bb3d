/* System calls issued by code on an HRT vCPU: the table of those the AeroKernel serves itself.
 * (Forwarding the rest to the partner thread in the ROS comes with HRT threads; until then an
 * unknown number returns -ENOSYS.) */
#include "cpu.h"
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

void syscall_dispatch(struct syscall_frame *f)
{
    struct cpu *c = this_cpu();
    unsigned long nr = f->rax;
    c->syscalls++;
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
