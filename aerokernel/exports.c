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
