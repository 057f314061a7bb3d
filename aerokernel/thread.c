/* HRT threads: creation, per-vCPU run queues, yield, exit, join (see include/thread.h). */
#include "cpu.h"
#include "hypercall.h"
#include "kernel.h"
#include "memlayout.h"
#include "mm.h"
#include "syscall.h"
#include "thread.h"
#include "x86.h"

#define MSR_FS_BASE 0xC0000100u

static struct thread threads[MAX_THREADS];
static struct spinlock threads_lock = SPINLOCK_INIT("threads");
static unsigned next_id = 0x1000;          /* program threads carry the VMM's ids, below this */
static struct runqueue runqueues[MAX_CPUS];
static struct thread idle_threads[MAX_CPUS];
static struct thread *current[MAX_CPUS];
static struct thread *event_waiters[MAX_CPUS];     /* blocked in thread_wait_event, per vCPU */

void thread_init_cpu(unsigned cpu)
{
    struct thread *idle = &idle_threads[cpu];
    idle->state = TS_RUNNING;
    idle->cpu = cpu;
    idle->joiner_cpu = -1;
    runqueues[cpu].lock = (struct spinlock)SPINLOCK_INIT("runqueue");
    current[cpu] = idle;
}

struct thread *thread_current(void)
{
    return current[this_cpu()->id];
}

static void enqueue(struct thread *t)
{
    struct runqueue *rq = &runqueues[t->cpu];
    spin_lock(&rq->lock);
    t->next = 0;
    t->state = TS_RUNNABLE;
    if (rq->tail)
        rq->tail->next = t;
    else
        rq->head = t;
    rq->tail = t;
    spin_unlock(&rq->lock);
    if (t->cpu != this_cpu()->id)
        hvm_hypercall(HVM_HC_KICK, t->cpu, 0, 0, 0);     /* it may be waiting for work */
}

static struct thread *dequeue(unsigned cpu)
{
    struct runqueue *rq = &runqueues[cpu];
    spin_lock(&rq->lock);
    struct thread *t = rq->head;
    if (t) {
        rq->head = t->next;
        if (!rq->head)
            rq->tail = 0;
    }
    spin_unlock(&rq->lock);
    return t;
}

/* A free slot with its kernel stack mapped, state TS_BLOCKED until enqueued. */
static struct thread *thread_alloc(unsigned cpu)
{
    spin_lock(&threads_lock);
    struct thread *t = 0;
    unsigned slot = 0;
    for (; slot < MAX_THREADS; slot++)
        if (threads[slot].state == TS_FREE) {
            t = &threads[slot];
            t->state = TS_BLOCKED;
            break;
        }
    unsigned id = next_id++;
    spin_unlock(&threads_lock);
    if (!t)
        return 0;
    unsigned long base = TSTACK_BASE + slot * TSTACK_SLOT + PAGE_SIZE;
    if (!(mm_lookup(base) & PTE_P) && mm_map_fresh(base, THREAD_STACK_SIZE) < 0) {
        t->state = TS_FREE;
        return 0;
    }
    unsigned long top = base + THREAD_STACK_SIZE;
    memset((char *)t + sizeof t->rsp, 0, sizeof *t - sizeof t->rsp);
    t->state = TS_BLOCKED;
    t->kstack_top = top;
    t->id = id;
    t->cpu = cpu < ncpus ? cpu : this_cpu()->id;
    t->joiner_cpu = -1;
    /* The initial stack: what switch_to pops (six callee-saved registers), then the return into
     * thread_trampoline; 16-byte aligned at thread_start's entry, as after a call. */
    unsigned long *sp = (unsigned long *)(top - 16);
    *--sp = (unsigned long)thread_trampoline;
    for (int i = 0; i < 6; i++)
        *--sp = 0;
    t->rsp = (unsigned long)sp;
    return t;
}

struct thread *thread_create(long (*fn)(long), long arg, unsigned cpu)
{
    struct thread *t = thread_alloc(cpu);
    if (!t)
        return 0;
    t->fn = fn;
    t->arg = arg;
    enqueue(t);
    return t;
}

struct thread *thread_create_program(const struct hvm_mailbox *mb, unsigned cpu, unsigned long id)
{
    struct thread *t = thread_alloc(cpu);
    if (!t)
        return 0;
    if (id)
        t->id = id;
    t->entry = mb->func;
    t->args[0] = mb->arg;
    t->args[1] = mb->arg1;
    t->args[2] = mb->arg2;
    t->user_stack = mb->stack;
    t->fs_base = mb->fs_base;
    t->channel = (struct hvm_event *)mb->channel;
    t->ros_pid = mb->pid;
    t->ros_tid = mb->tid;
    t->group = &t->own_group;
    enqueue(t);
    return t;
}

/* A nested thread: fn(arg) entered with RSP = sp (its return address already there) on the stack
 * [stack_base, +stack_size) the partner mapped, in its creator's execution group (channel,
 * partner, FS base), queued on vCPU `cpu`. */
struct thread *thread_create_nested(struct thread *creator, unsigned long fn, unsigned long arg,
                                    unsigned long sp, unsigned long stack_base,
                                    unsigned long stack_size, unsigned cpu)
{
    struct thread *t = thread_alloc(cpu);
    if (!t)
        return 0;
    t->entry = fn;
    t->args[0] = arg;
    t->user_stack = sp;
    t->fs_base = creator->fs_base;
    t->channel = creator->channel;
    t->ros_pid = creator->ros_pid;
    t->ros_tid = creator->ros_tid;
    t->group = creator->group;
    t->nested = 1;
    t->stack_base = stack_base;
    t->stack_size = stack_size;
    __atomic_add_fetch(&t->group->nested, 1, __ATOMIC_ACQ_REL);
    enqueue(t);
    return t;
}

struct thread *thread_find(unsigned long id)
{
    for (unsigned i = 0; i < MAX_THREADS; i++)
        if (threads[i].state != TS_FREE && threads[i].id == id)
            return &threads[i];
    return 0;
}

/* Switch from the running thread (already marked runnable, blocked or dead) to the next one on
 * this vCPU's queue, or to the idle thread. */
static void schedule(void)
{
    struct cpu *c = this_cpu();
    struct thread *prev = current[c->id];
    struct thread *next = dequeue(c->id);
    if (!next) {
        if (prev->state == TS_RUNNABLE && prev != &idle_threads[c->id]) {
            prev->state = TS_RUNNING;
            return;                         /* nothing else to run: keep going */
        }
        next = &idle_threads[c->id];
    }
    if (next == prev) {
        prev->state = TS_RUNNING;
        return;
    }
    if (prev->state == TS_RUNNABLE && prev != &idle_threads[c->id])
        enqueue(prev);
    next->state = TS_RUNNING;
    current[c->id] = next;
    /* A program thread's system calls run on its own kernel stack (it may block in one); kernel
     * threads, which call from their kernel stack, use the vCPU's. */
    syscall_percpu[c->id].stack_top = next->channel ? next->kstack_top
                                                    : c->stack_top[KSTACK_SLOT_SYSCALL];
    if (next->channel)
        wrmsr(MSR_FS_BASE, next->fs_base);
    /* Program code's x87/SSE registers belong to the thread: another program thread of this
     * vCPU will use them while this one is switched out. */
    if (prev->channel)
        __asm__ volatile("fxsave64 %0" : "=m"(*(unsigned char (*)[512])prev->fpu));
    switch_to(&prev->rsp, next->rsp);
    if (prev->channel)                      /* resumed: prev is this thread again */
        __asm__ volatile("fxrstor64 %0" : : "m"(*(unsigned char (*)[512])prev->fpu));
}

void thread_yield(void)
{
    struct thread *t = thread_current();
    t->state = TS_RUNNABLE;
    schedule();
}

/* The first code of every new thread (from thread_trampoline, on its own kernel stack). */
void __attribute__((noreturn)) thread_start(void)
{
    struct thread *t = thread_current();
    if (t->channel) {
        enter_program(t->entry, t->user_stack, t->args[0], t->args[1], t->args[2]);
    }
    thread_exit(t->fn(t->arg));
}

void __attribute__((noreturn)) thread_exit(long value)
{
    struct thread *t = thread_current();
    t->exit_value = value;
    int joiner = t->joiner_cpu;
    __atomic_store_n(&t->state, TS_DEAD, __ATOMIC_RELEASE);
    if (joiner >= 0 && (unsigned)joiner != this_cpu()->id)
        hvm_hypercall(HVM_HC_KICK, joiner, 0, 0, 0);
    schedule();
    panic("a dead thread was scheduled");
}

/* Wait until t has exited; its exit value. The slot is freed for reuse. */
long thread_join(struct thread *t)
{
    t->joiner_cpu = this_cpu()->id;
    while (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) != TS_DEAD) {
        if (runqueues[this_cpu()->id].head)
            thread_yield();
        else
            thread_wait_for_work(1UL << HVM_WORK_WAKE);
    }
    long v = t->exit_value;
    t->state = TS_FREE;
    return v;
}

/* A WAKE arrived on this vCPU: every thread whose awaited event has completed runs again. */
static void wake_event_waiters(unsigned cpu)
{
    struct thread **pp = &event_waiters[cpu];
    while (*pp) {
        struct thread *t = *pp;
        if (t->waiting_word ? __atomic_load_n(t->waiting_word, __ATOMIC_ACQUIRE) == 0
                            : __atomic_load_n(&t->waiting_on->state, __ATOMIC_ACQUIRE) == HVM_EVENT_COMPLETED) {
            *pp = t->next_waiter;
            t->waiting_on = 0;
            t->waiting_word = 0;
            enqueue(t);
        } else {
            pp = &t->next_waiter;
        }
    }
}

/* What the VMM answered a WAIT_EVENT (or a POST_EVENT with POST_WAIT) with: 0, no work yet: halt
 * until there is some (or, after POST_WAIT, until the event completes); WAKE: run the threads whose
 * events have completed. Other kinds are the caller's. */
static long took_work(unsigned cpu, long kind)
{
    if (kind == HVM_WORK_NONE)
        wait_for_interrupt();           /* the vCPU stops until the VMM has work for it */
    else if (kind == HVM_WORK_WAKE)
        wake_event_waiters(cpu);
    return kind;
}

long thread_wait_for_work(unsigned long kinds)
{
    unsigned cpu = this_cpu()->id;
    return took_work(cpu, hvm_hypercall(HVM_HC_WAIT_EVENT, cpu, kinds, 0, 0));
}

/* THREAD work taken while a thread waits for its event: queue the new top-level thread (it runs
 * once the waiter blocks). */
static void take_thread(unsigned cpu)
{
    struct hvm_mailbox *mb = this_cpu()->mailbox;
    if (!thread_create_program(mb, cpu, mb->thread))
        mb->result = -ENOMEM;
}

#define EVENT_WAIT_KINDS ((1UL << HVM_WORK_WAKE) | (1UL << HVM_WORK_THREAD))

/* Switch away from t until a WAKE on its vCPU finds ev completed, or *word 0 (wake_event_waiters). */
static void block_on(struct thread *t, unsigned cpu, struct hvm_event *ev, volatile int *word)
{
    t->waiting_on = ev;
    t->waiting_word = word;
    t->next_waiter = event_waiters[cpu];
    event_waiters[cpu] = t;
    t->state = TS_BLOCKED;
    schedule();
}

/* The partner works on the current thread's event: let the vCPU's other threads run meanwhile
 * (the completion queues a WAKE on this vCPU, which makes the thread runnable again), or, if
 * there are none, halt until it comes. */
void thread_wait_event(struct hvm_event *ev)
{
    struct thread *t = thread_current();
    unsigned cpu = this_cpu()->id;
    while (__atomic_load_n(&ev->state, __ATOMIC_ACQUIRE) != HVM_EVENT_COMPLETED) {
        if (runqueues[cpu].head) {
            block_on(t, cpu, ev, 0);
        } else if (thread_wait_for_work(EVENT_WAIT_KINDS) == HVM_WORK_THREAD) {
            take_thread(cpu);           /* then block and let it run */
        }
    }
}

/* Post ev (already filled in and marked POSTED) and wait for its completion. With nothing else to
 * run on this vCPU, the post itself asks for work (POST_WAIT, one exit instead of two) and, with
 * none, the vCPU halts at once: the VMM resumes it when the partner completes the event, without
 * a WAKE to take afterwards. */
void thread_post_wait_event(struct hvm_event *ev)
{
    unsigned cpu = this_cpu()->id;
    if (runqueues[cpu].head) {
        hvm_hypercall(HVM_HC_POST_EVENT, (long)ev, ev->kind, 0, 0);
    } else if (took_work(cpu, hvm_hypercall(HVM_HC_POST_EVENT, (long)ev, ev->kind, HVM_POST_WAIT,
                                            EVENT_WAIT_KINDS)) == HVM_WORK_THREAD) {
        take_thread(cpu);
    }
    thread_wait_event(ev);
}

/* Block the current thread until *word is 0 (a lock, a count). Whoever makes it 0 calls
 * thread_wake_waiters(waiters), which queues a WAKE on every vCPU with such a thread: there, as for
 * a completed event, wake_event_waiters makes it runnable to look again. Until then the vCPU runs
 * its other threads, or halts. */
void thread_wait_zero(volatile int *word, volatile unsigned long *waiters)
{
    unsigned cpu = this_cpu()->id;
    struct thread *t = thread_current();
    for (;;) {
        __atomic_or_fetch(waiters, 1UL << cpu, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(word, __ATOMIC_SEQ_CST))
            return;
        block_on(t, cpu, 0, word);
    }
}

void thread_wake_waiters(volatile unsigned long *waiters)
{
    /* The bits stay set: a waiter that looks again and finds the word taken by someone else (a
     * lock) blocks again and needs the next kick too. A group that never had a waiter costs
     * nothing here. */
    unsigned long mask = __atomic_load_n(waiters, __ATOMIC_SEQ_CST);
    for (unsigned cpu = 0; mask; cpu++, mask >>= 1)
        if (mask & 1)
            hvm_hypercall(HVM_HC_KICK, cpu, 0, 0, 0);
}

/* The VMM's time-slice interrupt landed on the current program thread (trap.c): take work the VMM
 * queued meanwhile (a new thread, a WAKE) without halting, then let the vCPU's other threads run.
 * Threads of one vCPU are otherwise only switched when one blocks, so a thread spinning on a flag
 * that another thread of the same vCPU sets would spin for ever. */
void thread_preempt(void)
{
    unsigned cpu = this_cpu()->id;
    long kind = hvm_hypercall(HVM_HC_WAIT_EVENT, cpu, EVENT_WAIT_KINDS, 0, 0);
    if (kind == HVM_WORK_WAKE)
        wake_event_waiters(cpu);
    else if (kind == HVM_WORK_THREAD)
        take_thread(cpu);
    if (runqueues[cpu].head)
        thread_yield();
}

int thread_run_queued(void)
{
    int n = 0;
    while (runqueues[this_cpu()->id].head) {
        thread_yield();                     /* from the idle thread: runs them until all block */
        n++;
    }
    return n;
}

/* For debuggers: the VMM's gdb stub finds every thread from here (struct hvm_debug_info in
 * hvm/abi.py; hvm/gdbstub/aerokernel.py reads it), instead of hard-coding this file's structures. */
__attribute__((used)) const struct hvm_debug_info hvm_debug_info = {
    .magic = HVM_DEBUG_INFO_MAGIC,
    .max_cpus = MAX_CPUS,
    .current = (unsigned long)current,
    .idle = (unsigned long)idle_threads,
    .threads = (unsigned long)threads,
    .max_threads = MAX_THREADS,
    .thread_size = sizeof(struct thread),
    .off_rsp = __builtin_offsetof(struct thread, rsp),
    .off_id = __builtin_offsetof(struct thread, id),
    .off_state = __builtin_offsetof(struct thread, state),
    .off_cpu = __builtin_offsetof(struct thread, cpu),
    .off_channel = __builtin_offsetof(struct thread, channel),
    .off_fs_base = __builtin_offsetof(struct thread, fs_base),
    .state_free = TS_FREE,
    .state_runnable = TS_RUNNABLE,
    .state_running = TS_RUNNING,
    .state_blocked = TS_BLOCKED,
    .state_dead = TS_DEAD,
    .runqueues = (unsigned long)runqueues,
    .runqueue_size = sizeof(struct runqueue),
    .off_rq_head = __builtin_offsetof(struct runqueue, head),
};
_Static_assert(sizeof(((struct thread *)0)->id) == 4 && sizeof(((struct thread *)0)->state) == 4
               && sizeof(((struct thread *)0)->cpu) == 4, "hvm_debug_info: id, state and cpu are u32");
