/* The GDT (shared), the per-CPU TSS with its IST stacks. */
#include "cpu.h"
#include "kernel.h"
#include "memlayout.h"
#include "mm.h"
#include "syscall.h"

_Static_assert(GDT_KDATA == GDT_KCODE + 8, "SYSCALL loads SS = STAR[47:32] + 8");
_Static_assert(GDT_KDATA < GDT_USER32_CS && GDT_USER_CS < (GDT_TSS_INDEX0 << 3), "GDT layout");
_Static_assert(KSTACK_SLOTS * (KSTACK_SIZE + KSTACK_GUARD) <= KSTACK_WINDOW, "per-CPU stack window");
_Static_assert(KSTACK_BASE + MAX_CPUS * KSTACK_WINDOW <= KDEMAND_BASE, "stacks below the demand region");
_Static_assert(IST_LEVELS * IST_NEST_SHIFT <= KSTACK_SIZE, "IST nesting levels fit in a stack");

/* Written by the CPU (accessed bits) and by ltr (busy bit): keep it in .data, not .rodata. */
uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16))) = {
    [GDT_KCODE >> 3]     = 0x00AF9A000000FFFFUL,   /* P, DPL 0, code, readable, L (64-bit) */
    [GDT_KDATA >> 3]     = 0x00CF92000000FFFFUL,   /* P, DPL 0, data, writable */
    [GDT_USER32_CS >> 3] = 0x00CFFA000000FFFFUL,   /* P, DPL 3, code, 32-bit */
    [GDT_USER_DS >> 3]   = 0x00CFF2000000FFFFUL,   /* P, DPL 3, data */
    [GDT_USER_CS >> 3]   = 0x00AFFA000000FFFFUL,   /* P, DPL 3, code, 64-bit */
};

/* Fill this CPU's 16-byte TSS descriptor and load TR: from here on this_cpu() works. */
void gdt_init_cpu(struct cpu *c)
{
    struct tss *t = &c->tss;
    memset(t, 0, sizeof *t);
    t->iomap_base = sizeof *t;              /* no I/O permission bitmap */

    uint64_t base = (uint64_t)t, limit = sizeof *t - 1;
    unsigned idx = GDT_TSS_SEL(c->id) >> 3;
    gdt[idx] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89UL << 40) /* P, 64-bit TSS */
               | (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    gdt[idx + 1] = base >> 32;
    __asm__ volatile("ltr %0" : : "r"((uint16_t)GDT_TSS_SEL(c->id)) : "memory");
}

/* Stack `slot` of a CPU: KSTACK_SIZE bytes with an unmapped guard page below. */
static unsigned long kstack_base(unsigned cpu, unsigned slot)
{
    return KSTACK_BASE + cpu * KSTACK_WINDOW + slot * (KSTACK_SIZE + KSTACK_GUARD) + KSTACK_GUARD;
}

/* Map the syscall stack and the seven IST stacks of this CPU and point the TSS at them. The IST
 * pointers stay 16 bytes below the top (16-byte aligned, as the CPU aligns them anyway). */
int cpu_stacks_init(struct cpu *c)
{
    for (unsigned slot = 0; slot < KSTACK_SLOTS; slot++) {
        unsigned long base = kstack_base(c->id, slot);
        int r = mm_map_fresh(base, KSTACK_SIZE);
        if (r < 0)
            return r;
        c->stack_top[slot] = base + KSTACK_SIZE;
        if (slot >= 1)
            c->tss.ist[slot - 1] = c->stack_top[slot] - 16;
    }
    return 0;
}
