/* Per-CPU state: the TSS (with its IST pointers), stacks, exception statistics. */
#ifndef AK_CPU_H
#define AK_CPU_H

#include <stdint.h>
#include "gdt.h"
#include "hvm_abi.h"
#include "x86.h"

struct trapframe;

/* The 64-bit TSS (Intel SDM Vol. 3 Fig. 8-11). */
struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];            /* ist[0] is IST1 (TSS offset 0x24) */
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

_Static_assert(sizeof(struct tss) == 104, "TSS layout");

/* IST assignment (every gate uses one: HRT code may run on a program's stack, red zone and all). */
#define IST_DF          1       /* #DF */
#define IST_NMI         2       /* NMI */
#define IST_MC          3       /* #MC */
#define IST_DEBUG       4       /* #DB, #BP (a debugger may trap inside any other handler) */
#define IST_PF          5       /* #PF */
#define IST_GP          6       /* #TS, #NP, #SS, #GP */
#define IST_OTHER       7       /* everything else (#DE, #UD, ...) */
#define IST_COUNT       7

/* Nesting on one IST: while a handler runs, its TSS.IST pointer is lowered by IST_NEST_SHIFT so
 * a nested exception on the same IST gets a fresh frame below (as Linux once did for #DB).
 * IST_LEVELS levels fit in one KSTACK_SIZE stack; the last one is reserved for reporting. */
#define IST_NEST_SHIFT  0x1000UL
#define IST_LEVELS      4

/* A ring-0 fault at an address in [lo, hi) calls fn first (self-tests use it); fn returns 1 if
 * it fixed the cause and the faulting instruction should be restarted. */
struct fault_hook {
    unsigned long lo, hi;
    int (*fn)(struct trapframe *tf, void *arg);
    void *arg;
};

struct cpu {
    struct tss tss;                     /* first: with the 128-byte alignment it never crosses a page */
    unsigned id;
    int online;
    struct hvm_boot_info *boot;
    struct hvm_mailbox *mailbox;
    unsigned long stack_top[8];         /* [0] syscall stack, [1..7] IST1..IST7 (original tops) */
    unsigned ist_depth[8];              /* current nesting on each IST */
    /* exception statistics (the self-tests read them) */
    unsigned long exc_count[32];
    unsigned long last_vector, last_error, last_cr2, last_rip;
    unsigned long demand_faults;        /* frames mapped by the #PF handler */
    unsigned long syscalls, syscalls_unknown;
    struct fault_hook pf_hook;
} __attribute__((aligned(128)));

extern struct cpu cpus[MAX_CPUS];
extern unsigned ncpus;

/* The CPU we run on, from the task register (each CPU loads its own TSS selector): works on any
 * stack, costs no register or MSR. NULL before gdt_init_cpu() loaded TR. */
static inline struct cpu *this_cpu(void)
{
    uint16_t sel = str();
    if (sel < GDT_TSS_SEL(0) || sel >= GDT_TSS_SEL(MAX_CPUS))
        return 0;
    return &cpus[(sel - GDT_TSS_SEL(0)) >> 4];
}

static inline int this_cpu_id(void)
{
    struct cpu *c = this_cpu();
    return c ? (int)c->id : -1;
}

/* gdt.c */

void gdt_init_cpu(struct cpu *c);                 /* fill this CPU's TSS descriptor, ltr */
int cpu_stacks_init(struct cpu *c);               /* map syscall + IST stacks, point the TSS at them */

/* idt.c */
void idt_init(void);                              /* build the shared IDT (once) and lidt */
unsigned idt_ist(unsigned vector);                /* the IST (1..7) of a vector's gate */

/* syscall.c */
void syscall_init_cpu(struct cpu *c);

#endif
