/* The IDT: interrupt gates for the exceptions (vectors 0-31) and the VMM's time-slice interrupt
 * (32, T_PREEMPT), each on an IST stack. Shared by all CPUs. */
#include "cpu.h"
#include "kernel.h"
#include "spinlock.h"
#include "trap.h"

struct idt_gate {
    uint16_t offset0;
    uint16_t selector;
    uint8_t ist;            /* bits 0-2 */
    uint8_t type_attr;      /* P | DPL | type (0xE: 64-bit interrupt gate) */
    uint16_t offset1;
    uint32_t offset2;
    uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");

static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct spinlock idt_lock = SPINLOCK_INIT("idt");
static int idt_built;
extern const unsigned long isr_stubs[NUM_VECTORS];

/* Which IST each vector uses (cpu.h explains the choice). */
unsigned idt_ist(unsigned vector)
{
    switch (vector) {
    case T_DF: return IST_DF;
    case T_NMI: return IST_NMI;
    case T_MC: return IST_MC;
    case T_DB: case T_BP: return IST_DEBUG;
    case T_PF: return IST_PF;
    case T_TS: case T_NP: case T_SS: case T_GP: return IST_GP;
    default: return IST_OTHER;
    }
}

static void set_gate(unsigned v, unsigned long handler, unsigned ist, unsigned dpl)
{
    idt[v] = (struct idt_gate){
        .offset0 = handler & 0xFFFF,
        .selector = GDT_KCODE,
        .ist = ist & 7,
        .type_attr = 0x80 | (dpl << 5) | 0xE,
        .offset1 = (handler >> 16) & 0xFFFF,
        .offset2 = handler >> 32,
    };
}

void idt_init(void)
{
    spin_lock(&idt_lock);
    if (!idt_built) {
        for (unsigned v = 0; v < NUM_VECTORS; v++)  /* #BP and #OF may be raised by int3 / into at any CPL */
            set_gate(v, isr_stubs[v], idt_ist(v), (v == T_BP || v == T_OF) ? 3 : 0);
        idt_built = 1;                      /* vectors 33-255 stay not present */
    }
    spin_unlock(&idt_lock);
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) d = { sizeof idt - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(d) : "memory");
}
