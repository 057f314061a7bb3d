/* Exception handling: trap() is called by isr.S with the saved frame, on the vector's IST stack.
 *
 * Policy (what the HRT can serve itself):
 *   #PF  a per-CPU fault hook (self-tests) -> a not-present fault in the kernel's demand region
 *        (a fresh zeroed frame, RW+NX) -> the exception table -> fatal
 *   #DE  reported to the VMM (HRT_EXCEPTION), then the exception table -> fatal
 *   #BP  reported to the VMM (HRT_EXCEPTION) and resumed after the int3
 *   #GP  the exception table -> fatal
 *   else fatal: reported to the VMM (HRT_EXCEPTION vector, rip, error code, cr2), the state is
 *        printed, and the vCPU halts.
 * Program code of a top-level thread (RIP in the lower half) is different: its page faults are
 * forwarded to the partner for the ROS to resolve, and its other exceptions become the signals
 * Linux would send (events.c). Vector 32 is the VMM's time-slice interrupt: the program thread
 * it lands on yields to the vCPU's other threads (thread_preempt). */
#include "cpu.h"
#include "events.h"
#include "hypercall.h"
#include "kernel.h"
#include "memlayout.h"
#include "mm.h"
#include "trap.h"

extern const struct extable_entry __start___ex_table[], __stop___ex_table[];

static const char *const names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
    "coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present",
    "#SS stack fault", "#GP general protection", "#PF page fault", "reserved 15",
    "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
    "#VE virtualization", "#CP control protection",
};

const char *trap_name(unsigned long vector)
{
    return vector < 32 && names[vector] ? names[vector] : "reserved";
}

unsigned long extable_find(unsigned long rip)
{
    for (const struct extable_entry *e = __start___ex_table; e < __stop___ex_table; e++)
        if (e->insn == rip)
            return e->fixup;
    return 0;
}

static int fixup(struct trapframe *tf)
{
    unsigned long to = extable_find(tf->rip);
    if (!to)
        return 0;
    tf->rip = to;
    return 1;
}

static int page_fault(struct cpu *c, struct trapframe *tf, unsigned long cr2)
{
    struct fault_hook *h = &c->pf_hook;
    if (h->fn && cr2 >= h->lo && cr2 < h->hi && h->fn(tf, h->arg))
        return 1;
    if (!(tf->error & (PF_P | PF_U | PF_I | PF_RSVD)) && cr2 >= KDEMAND_BASE && cr2 < KDEMAND_END) {
        unsigned long pa = page_alloc();
        if (!pa) {
            kprintf("aerokernel: cpu %u: out of memory for a demand page at %#lx\n", c->id, cr2);
            return 0;
        }
        int r = mm_map(cr2 & PAGE_MASK, pa, PTE_W | PTE_NX);
        if (r < 0) {
            page_free(pa);
            return r == -EEXIST;        /* another CPU mapped it first: just retry */
        }
        c->demand_faults++;
        return 1;
    }
    return fixup(tf);
}

/* Is [va, va + 8) readable without faulting? (for the backtrace of a fatal dump) */
static int readable(unsigned long va)
{
    return (va & 7) == 0 && (mm_lookup(va) & PTE_P);
}

static void __attribute__((noreturn)) fatal(struct cpu *c, struct trapframe *tf, unsigned long cr2,
                                            int reported, const char *why)
{
    if (!reported)
        hvm_hypercall(HVM_HC_HRT_EXCEPTION, tf->vector, tf->rip, tf->error, cr2);
    kprintf("aerokernel: cpu %d: fatal %s%s at rip %#lx, error code %#lx, cr2 %#lx\n"
            "aerokernel:   rax %016lx rbx %016lx rcx %016lx rdx %016lx\n"
            "aerokernel:   rsi %016lx rdi %016lx rbp %016lx rsp %016lx\n"
            "aerokernel:   r8  %016lx r9  %016lx r10 %016lx r11 %016lx\n"
            "aerokernel:   r12 %016lx r13 %016lx r14 %016lx r15 %016lx\n"
            "aerokernel:   cs %lx ss %lx rflags %lx cr0 %lx cr3 %lx\n",
            c ? (int)c->id : -1, trap_name(tf->vector), why, tf->rip, tf->error, cr2,
            tf->rax, tf->rbx, tf->rcx, tf->rdx, tf->rsi, tf->rdi, tf->rbp, tf->rsp,
            tf->r8, tf->r9, tf->r10, tf->r11, tf->r12, tf->r13, tf->r14, tf->r15,
            tf->cs, tf->ss, tf->rflags, read_cr0(), read_cr3());
    unsigned long fp = tf->rbp;
    for (int i = 0; i < 16 && readable(fp) && readable(fp + 8); i++) {
        unsigned long ret = ((unsigned long *)fp)[1];
        if (ret < HVM_KERNEL_VBASE)
            break;
        kprintf("aerokernel:   called from %#lx\n", ret);
        unsigned long next = ((unsigned long *)fp)[0];
        if (next <= fp)                 /* callers' frames lie above: stop on a loop */
            break;
        fp = next;
    }
    halt_forever();
}

/* The statistics the self-tests read. */
static void count_exception(struct cpu *c, const struct trapframe *tf, unsigned long cr2)
{
    c->exc_count[tf->vector & 31]++;
    c->last_vector = tf->vector;
    c->last_error = tf->error;
    c->last_cr2 = cr2;
    c->last_rip = tf->rip;
}

/* Is this an exception of program code, to be forwarded to the thread's partner? */
static int program_exception(struct cpu *c, const struct trapframe *tf)
{
    struct thread *t = c ? thread_current() : 0;
    return t && t->channel && tf->rip < LOWER_HALF_END;
}

/* Called by isr_common on the IST stack: the frame trap() runs on. An exception of program code
 * is forwarded and the thread may block until its partner is done, so it moves to the thread's
 * own kernel stack (free while the thread runs program code); any other stays where it is. */
struct trapframe *trap_stack(struct trapframe *tf)
{
    struct cpu *c = this_cpu();
    if (!program_exception(c, tf))
        return tf;
    struct trapframe *moved = (struct trapframe *)((thread_current()->kstack_top - sizeof *tf) & ~15UL);
    memcpy(moved, tf, sizeof *tf);
    return moved;
}

void trap(struct trapframe *tf)
{
    struct cpu *c = this_cpu();
    unsigned long vec = tf->vector;
    unsigned long cr2 = vec == T_PF ? read_cr2() : 0;
    if (!c)
        fatal(c, tf, cr2, 0, " (no TSS loaded)");
    if (vec == T_PREEMPT) {
        /* The VMM's time-slice interrupt, delivered only to program code with IF set: on the
         * thread's own kernel stack (trap_stack), let the vCPU's other threads run. */
        if (program_exception(c, tf))
            thread_preempt();
        return;
    }
    if (program_exception(c, tf)) {
        /* on the thread's kernel stack (trap_stack): the IST is not ours to lower */
        count_exception(c, tf, cr2);
        struct thread *t = thread_current();
        if (!(vec == T_PF ? event_page_fault(t, tf, cr2) : event_exception(t, tf, cr2)))
            fatal(c, tf, cr2, 0, "");
        return;
    }

    /* Lower this IST while we run, so a nested exception on it gets its own frame. */
    unsigned ist = idt_ist(vec);
    unsigned depth = c->ist_depth[ist];
    if (depth + 1 >= IST_LEVELS)
        fatal(c, tf, cr2, 0, " (exceptions nested too deep)");
    c->ist_depth[ist] = depth + 1;
    c->tss.ist[ist - 1] -= IST_NEST_SHIFT;
    count_exception(c, tf, cr2);

    int handled = 0, reported = 0;
    switch (vec) {
    case T_PF:
        handled = page_fault(c, tf, cr2);
        break;
    case T_DE:
        hvm_hypercall(HVM_HC_HRT_EXCEPTION, T_DE, tf->rip, 0, 0);
        reported = 1;
        handled = fixup(tf);
        break;
    case T_BP:                          /* a trap: the pushed rip is after the int3 */
        hvm_hypercall(HVM_HC_HRT_EXCEPTION, T_BP, tf->rip, 0, 0);
        handled = 1;
        break;
    case T_GP:
        handled = fixup(tf);
        break;
    }
    if (!handled)
        fatal(c, tf, cr2, reported, "");

    c->tss.ist[ist - 1] += IST_NEST_SHIFT;
    c->ist_depth[ist] = depth;
}
