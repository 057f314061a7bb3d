/* AeroKernel functions exported to programs and to the VMM: ordinary global symbols, found by
 * name in the image's ELF symbol table and called on an HRT vCPU (HVM_WORK_CALL, or directly
 * from HRT code in the accelerator model). Signature: long f(long).
 *
 * The accelerator SDK (toolchain/sdk/hrt.h) reaches the ones below aerokernel_read_cr0 through
 * function overrides: `mvemu hybridize` redirects hrt_read_cr3() and friends here when they are
 * called in HRT context (toolchain/overrides.toml, docs/overrides.md). They run in ring 0 on the
 * calling thread's stack (a program stack for an HRT thread), so they keep to the SysV ABI and
 * touch no SSE state. A negative result is -errno. */
#include "cpu.h"
#include "events.h"
#include "hypercall.h"
#include "kernel.h"
#include "mm.h"
#include "thread.h"
#include "x86.h"

long aerokernel_add(long x)
{
    return x + 0x1000;
}

long aerokernel_read_cr0(long unused)
{
    (void)unused;
    return (long)read_cr0();
}

long aerokernel_read_cr3(long unused)
{
    (void)unused;
    return (long)read_cr3();
}

long aerokernel_read_cr4(long unused)
{
    (void)unused;
    return (long)read_cr4();
}

/* The HRT vCPU this runs on (0 .. ncpus - 1). */
long aerokernel_cpu_id(long unused)
{
    (void)unused;
    return this_cpu_id();
}

/* The AeroKernel thread this runs in: its id (a program's top-level HRT threads have the ids their
 * partners asked for, kernel threads their own), or -EINVAL before threads exist. */
long aerokernel_thread_id(long unused)
{
    (void)unused;
    struct cpu *c = this_cpu();
    struct thread *t = c ? thread_current() : 0;
    return t ? (long)t->id : -EINVAL;
}

/* Interrupts off on this vCPU; returns 1 if they were on (to hand to aerokernel_irq_restore). */
long aerokernel_irq_disable(long unused)
{
    (void)unused;
    long was_on = (read_rflags() & RFLAGS_IF) != 0;
    __asm__ volatile("cli" ::: "memory");
    return was_on;
}

/* Interrupts back on if `was_on` (what aerokernel_irq_disable returned); returns whether they
 * were on before this call. */
long aerokernel_irq_restore(long was_on)
{
    long before = (read_rflags() & RFLAGS_IF) != 0;
    if (was_on)
        __asm__ volatile("sti" ::: "memory");
    return before;
}

/* Whether interrupts are on (RFLAGS.IF) on this vCPU. */
long aerokernel_irq_enabled(long unused)
{
    (void)unused;
    return (read_rflags() & RFLAGS_IF) != 0;
}

/* A zeroed physical page (4 KiB) from the HRT's free memory: its guest-physical address, or
 * -ENOMEM. The HRT sees it at HVM_HIGH_BASE + address (ring 0 only). */
long aerokernel_page_alloc(long unused)
{
    (void)unused;
    unsigned long pa = page_alloc();
    return pa ? (long)pa : -ENOMEM;
}

/* Give back a page from aerokernel_page_alloc. 0, or -EINVAL for an address that is not one. */
long aerokernel_page_free(long pa)
{
    if (pa <= 0 || (pa & 0xfff))
        return -EINVAL;
    page_free((unsigned long)pa);
    return 0;
}

/* Free physical memory of the HRT, in bytes. */
long aerokernel_free_bytes(long unused)
{
    (void)unused;
    return (long)pmm_free_bytes();
}

/* -- nested threads (paper III-D) --------------------------------------------------------------- */
#define SYS_mmap        9
#define SYS_munmap      11
#define NESTED_STACK    (1UL << 20)
#define PROT_RW         3
#define MAP_NESTED      (0x02 | 0x20 | 0x4000 | 0x20000)   /* PRIVATE | ANONYMOUS | NORESERVE | STACK */

static unsigned next_nested_cpu;

/* Store a word in program memory, having the partner page it in (or break copy-on-write) first if
 * it is not writable yet: 0, or -EFAULT. */
static long put_user_word(struct thread *self, unsigned long addr, unsigned long value)
{
    for (int tries = 0; copy_to_user((void *)addr, &value, sizeof value) < 0; tries++) {
        if (tries == 2)
            return -EFAULT;
        event_fault_in(self, addr, 1);
    }
    return 0;
}

/* Start fn(arg) as a nested thread of the calling program thread: it runs in ring 0 like its
 * creator, in its execution group (the same partner serves its system calls and page faults, so
 * getpid/gettid answer the creator's ids, and its FS base is the creator's), on a 1 MiB stack the
 * partner maps, on the next HRT vCPU in turn. Returns its AeroKernel thread id, or -errno. Join
 * it with aerokernel_thread_join; its creator's thread does not end before it (its partner would). */
long aerokernel_thread_create(long fn, long arg)
{
    struct thread *self = thread_current();
    if (!self->channel || !fn || (unsigned long)fn >= LOWER_HALF_END)
        return -EINVAL;
    long stack = event_call(self, SYS_mmap, 0, NESTED_STACK, PROT_RW, MAP_NESTED, -1, 0);
    if (stack < 0)
        return stack;
    /* entered as if called: the return address (nested_thread_return) on a 16-byte aligned top */
    unsigned long sp = (unsigned long)stack + NESTED_STACK - 8;
    unsigned long ret = (unsigned long)nested_thread_return;
    struct thread *t = 0;
    if (put_user_word(self, sp, ret) == 0) {
        unsigned cpu = __atomic_fetch_add(&next_nested_cpu, 1, __ATOMIC_RELAXED) % ncpus;
        t = thread_create_nested(self, (unsigned long)fn, (unsigned long)arg, sp, (unsigned long)stack,
                                 NESTED_STACK, cpu);
    }
    if (!t) {
        event_call(self, SYS_munmap, stack, NESTED_STACK, 0, 0, 0, 0);
        return -EAGAIN;
    }
    hvm_hypercall(HVM_HC_NESTED_THREAD, t->id, self->id, t->cpu, (long)self->channel);
    return t->id;
}

/* Wait for the nested thread `id` (one of the caller's group) to end; store what its function
 * returned in *result (if result is not NULL) and free it. 0, or -ESRCH (no such thread), or
 * -EINVAL (not a nested thread of this group, or the caller itself). */
long aerokernel_thread_join(long id, long result)
{
    struct thread *self = thread_current();
    struct thread *t = thread_find((unsigned long)id);
    if (!t)
        return -ESRCH;
    if (!self->channel || !t->nested || t->group != self->group || t == self)
        return -EINVAL;
    unsigned long base = t->stack_base, size = t->stack_size;
    long value = thread_join(t);        /* (frees t) */
    event_call(self, SYS_munmap, (long)base, (long)size, 0, 0, 0, 0);
    return result ? put_user_word(self, (unsigned long)result, (unsigned long)value) : 0;
}
