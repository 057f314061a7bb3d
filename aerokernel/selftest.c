/* Self-tests of the AeroKernel's exception, paging and syscall paths, run on HVM_WORK_SELFTEST.
 * Each returns 0 (pass) or a failure code, reported with HVM_HC_SELFTEST and a console line. */
#include "cpu.h"
#include "hypercall.h"
#include "kernel.h"
#include "memlayout.h"
#include "mm.h"
#include "selftest.h"
#include "syscall.h"
#include "thread.h"
#include "trap.h"

#define barrier() __asm__ volatile("" ::: "memory")

static void release(unsigned long va)
{
    unsigned long pa;
    if (mm_unmap(va, &pa) == 0)
        page_free(pa);
}

/* 1. A ring-0 write to an unmapped address of the demand region: #PF, error code 0x2 (write,
 *    not present), CR2 = the address; the handler maps a frame and the write completes.
 *    Failure: 1 no/several faults, 2 wrong CR2, 0x100|code wrong error code, 4 not demand-mapped,
 *    5 value lost, 6 not mapped afterwards. */
static unsigned long test_pagefault(struct cpu *c)
{
    unsigned long va = SELFTEST_VA(c->id, 0);
    release(va);                                /* a previous run's page */
    unsigned long faults = c->exc_count[T_PF], demand = c->demand_faults;
    volatile unsigned long *p = (volatile unsigned long *)va;
    *p = 0x1122334455667788UL;
    barrier();
    unsigned long code = 0;
    if (c->exc_count[T_PF] != faults + 1)
        code = 1;
    else if (c->last_cr2 != va)
        code = 2;
    else if (c->last_error != PF_W)
        code = 0x100 | c->last_error;
    else if (c->demand_faults != demand + 1)
        code = 4;
    else if (*p != 0x1122334455667788UL)
        code = 5;
    else if (!(mm_lookup(va) & PTE_P))
        code = 6;
    release(va);
    return code;
}

/* 2. CR0.WP: a ring-0 write to a present read-only page faults with error code 0x3; the fault
 *    hook records it and makes the page writable; the write completes.
 *    Failure: the observed error code if wrong, 0x10000 no fault (WP off?), 0x20000|n n faults,
 *    0x40000 value lost, 0x80000 setup failed. */
struct wp_state {
    unsigned long va, faults, error;
};

static int wp_fixup(struct trapframe *tf, void *arg)
{
    struct wp_state *s = arg;
    s->faults++;
    s->error = tf->error;
    return mm_protect(s->va, PTE_W | PTE_NX) == 0;
}

static unsigned long test_wp(struct cpu *c)
{
    struct wp_state s = { .va = SELFTEST_VA(c->id, 1) };
    release(s.va);
    unsigned long pa = page_alloc();
    if (!pa || mm_map(s.va, pa, PTE_NX) < 0)    /* present, read-only */
        return 0x80000;
    *(volatile unsigned long *)phys_to_virt(pa) = 0x5555;   /* through the HIGH_BASE alias */
    volatile unsigned long *p = (volatile unsigned long *)s.va;
    unsigned long code = 0;
    if (*p != 0x5555)
        code = 0x80000;
    if (!code) {
        c->pf_hook = (struct fault_hook){ s.va, s.va + PAGE_SIZE, wp_fixup, &s };
        barrier();
        *p = 0xfeedfacecafeUL;
        barrier();
        c->pf_hook = (struct fault_hook){ 0 };
        if (s.faults == 0)
            code = 0x10000;
        else if (s.faults != 1)
            code = 0x20000 | s.faults;
        else if (s.error != (PF_P | PF_W))
            code = s.error ? s.error : 0x30000;
        else if (*p != 0xfeedfacecafeUL)
            code = 0x40000;
    }
    release(s.va);
    return code;
}

/* 3. #DE: `div` by zero at st_divide_insn; the handler reports HRT_EXCEPTION(0, rip) and
 *    resumes after the instruction. Failure: 1 no/several #DE, 2 wrong rip, 3 wrong result. */
static unsigned long test_divide(struct cpu *c)
{
    volatile long zero = 0;
    unsigned long before = c->exc_count[T_DE];
    long r = st_divide(1234, zero);
    barrier();
    if (c->exc_count[T_DE] != before + 1)
        return 1;
    if (c->last_rip != (unsigned long)st_divide_insn)
        return 2;
    if (r != 1234)
        return 3;
    return 0;
}

/* 4. #BP: `int3`; the handler reports HRT_EXCEPTION(3, rip after the int3) and returns.
 *    Failure: 1 no/several #BP, 2 wrong rip in the frame. */
static unsigned long test_int3(struct cpu *c)
{
    unsigned long before = c->exc_count[T_BP];
    st_int3();
    barrier();
    if (c->exc_count[T_BP] != before + 1)
        return 1;
    if (c->last_rip != (unsigned long)st_int3_after)
        return 2;
    return 0;
}

/* 5. `syscall` in ring 0: getpid answers 0x4852, and the caller's registers and red zone
 *    survive. Failure: a bit mask of what was wrong (see below). */
static unsigned long test_syscall(struct cpu *c)
{
    struct st_syscall_out o;
    unsigned long calls = c->syscalls, code = 0;
    memset(&o, 0, sizeof o);
    st_syscall_run(&o);
    barrier();
    if (o.rax != AEROKERNEL_PID) code |= 1 << 0;
    if (o.rbx != ST_RBX) code |= 1 << 1;
    if (o.rbp != ST_RBP) code |= 1 << 2;
    if (o.r12 != ST_R12) code |= 1 << 3;
    if (o.r13 != ST_R13) code |= 1 << 4;
    if (o.r14 != ST_R14) code |= 1 << 5;
    if (o.rsp != o.r15) code |= 1 << 6;                         /* R15 = RSP before */
    if (o.rdx != ST_RDX || o.rsi != ST_RSI || o.rdi != ST_RDI) code |= 1 << 7;
    if (o.r8 != ST_R8 || o.r9 != ST_R9 || o.r10 != ST_R10) code |= 1 << 8;
    if (o.rcx != (unsigned long)st_syscall_ret) code |= 1 << 9;  /* RCX = return RIP */
    if (!(o.r11 & 2) || (o.r11 & RFLAGS_TF)) code |= 1 << 10;    /* R11 = RFLAGS */
    for (int i = 0; i < 16; i++)
        if (o.redzone[i] != ST_REDZONE + (unsigned long)i)
            code |= 1 << 11;
    if (c->syscalls != calls + 1) code |= 1 << 12;               /* went through our entry */
    if (st_syscall_raw(9999) != -ENOSYS) code |= 1 << 13;
    if (st_syscall_raw(-1) != -ENOSYS) code |= 1 << 14;
    return code;
}

/* 6. The console: this test's own line must reach mvemu's stderr (the VMM side checks that).
 *    Failure: the negated result of CONSOLE_WRITE, or 1 for a short write. */
static unsigned long test_console(struct cpu *c)
{
    (void)c;
    static const char line[] = "aerokernel: selftest console ok\n";
    long n = console_write(line, sizeof line - 1);
    if (n < 0)
        return -n;
    return n != sizeof line - 1;
}

/* 7. Nesting on one IST: while the #PF handler runs (a fault hook on page A), it touches the
 *    unmapped page B, so a second #PF arrives on the same IST5. The handler lowered TSS.IST5 on
 *    entry, so the nested frame lands below the outer one instead of over it: the outer frame
 *    must come through intact and both writes complete.
 *    Failure: a bit mask: 1 hook calls, 2 depth, 4 outer frame clobbered, 8 values lost,
 *    0x10 fault count, 0x20 IST pointer or depth not restored. */
struct nest_state {
    unsigned long a, b, calls;
    unsigned depth;
    int intact;
};

static int nested_hook(struct trapframe *tf, void *arg)
{
    struct nest_state *s = arg;
    struct trapframe saved = *tf;
    s->calls++;
    s->depth = this_cpu()->ist_depth[IST_PF];
    *(volatile unsigned long *)s->b = 0xb0b0;     /* the nested #PF, demand-mapped */
    barrier();
    s->intact = memcmp(&saved, tf, sizeof saved) == 0;
    return 0;                                     /* A: let the demand path map it */
}

static unsigned long test_nested(struct cpu *c)
{
    struct nest_state s = { .a = SELFTEST_VA(c->id, 2), .b = SELFTEST_VA(c->id, 3) };
    release(s.a);
    release(s.b);
    unsigned long faults = c->exc_count[T_PF], code = 0;
    c->pf_hook = (struct fault_hook){ s.a, s.a + PAGE_SIZE, nested_hook, &s };
    barrier();
    *(volatile unsigned long *)s.a = 0xa0a0;
    barrier();
    c->pf_hook = (struct fault_hook){ 0 };
    if (s.calls != 1) code |= 1;
    if (s.depth != 1) code |= 2;
    if (!s.intact) code |= 4;
    if (*(volatile unsigned long *)s.a != 0xa0a0 || *(volatile unsigned long *)s.b != 0xb0b0) code |= 8;
    if (c->exc_count[T_PF] != faults + 2) code |= 0x10;
    if (c->ist_depth[IST_PF] != 0 || c->tss.ist[IST_PF - 1] != c->stack_top[IST_PF] - 16) code |= 0x20;
    release(s.a);
    release(s.b);
    return code;
}

/* 8. HRT threads: one created on this vCPU and one on the next (the same one if there is only
 *    one), each yielding between steps; join returns their values, and each ran where it was
 *    put. Failure: 1 create failed, 2/3 wrong join value, 4/5 wrong vCPU, 6/7 steps missing. */
struct st_thread_arg {
    long value;
    volatile unsigned ran_on;
    volatile unsigned steps;
};

static long st_thread_fn(long arg)
{
    struct st_thread_arg *a = (struct st_thread_arg *)arg;
    a->ran_on = this_cpu()->id;
    for (int i = 0; i < 3; i++) {
        a->steps++;
        thread_yield();
    }
    return a->value * 2;
}

static unsigned long test_threads(struct cpu *c)
{
    static struct st_thread_arg args[MAX_CPUS][2];
    struct st_thread_arg *a = &args[c->id][0], *b = &args[c->id][1];
    unsigned other = (c->id + 1) % ncpus;
    *a = (struct st_thread_arg){ .value = 21 + c->id, .ran_on = ~0u };
    *b = (struct st_thread_arg){ .value = 50 + c->id, .ran_on = ~0u };
    struct thread *ta = thread_create(st_thread_fn, (long)a, c->id);
    struct thread *tb = thread_create(st_thread_fn, (long)b, other);
    if (!ta || !tb)
        return 1;
    thread_yield();                     /* ta runs its first step now */
    long ra = thread_join(ta), rb = thread_join(tb);
    if (ra != 2 * a->value)
        return 2;
    if (rb != 2 * b->value)
        return 3;
    if (a->ran_on != c->id)
        return 4;
    if (b->ran_on != other)
        return 5;
    if (a->steps != 3)
        return 6;
    if (b->steps != 3)
        return 7;
    kprintf("aerokernel: selftest threads ok (cpu %u: joined a thread on cpu %u and one on cpu %u)\n",
            c->id, c->id, other);
    return 0;
}

static const struct selftest {
    unsigned id;
    const char *name;
    unsigned long (*fn)(struct cpu *c);
    int prints_itself;
} tests[] = {
    { ST_PAGEFAULT, "pagefault", test_pagefault, 0 },
    { ST_WP, "wp", test_wp, 0 },
    { ST_DIVIDE, "divide", test_divide, 0 },
    { ST_INT3, "int3", test_int3, 0 },
    { ST_SYSCALL, "syscall", test_syscall, 0 },
    { ST_CONSOLE, "console", test_console, 1 },
    { ST_NESTED, "nested", test_nested, 0 },
    { ST_THREADS, "threads", test_threads, 1 },
};

int selftest_run(void)
{
    struct cpu *c = this_cpu();
    int failures = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(tests); i++) {
        const struct selftest *t = &tests[i];
        unsigned long code = t->fn(c);
        hvm_hypercall(HVM_HC_SELFTEST, t->id, code, 0, 0);
        if (code)
            failures++;
        if (code && ncpus > 1)
            kprintf("aerokernel: selftest %s FAILED (code %#lx) (cpu %u)\n", t->name, code, c->id);
        else if (code)
            kprintf("aerokernel: selftest %s FAILED (code %#lx)\n", t->name, code);
        else if (!t->prints_itself && ncpus > 1)
            kprintf("aerokernel: selftest %s ok (cpu %u)\n", t->name, c->id);
        else if (!t->prints_itself)
            kprintf("aerokernel: selftest %s ok\n", t->name);
    }
    return failures;
}
