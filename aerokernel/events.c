/* Forwarding over an execution group's event channel (struct hvm_event, in the partner's memory,
 * at the same virtual address on both sides once the lower half is merged).
 *
 * The HRT side fills the record and posts it (state POSTED, hypercall POST_EVENT); the VMM wakes
 * the partner, which takes it, does the work in the ROS, writes the result and completes it
 * (COMPLETED). Meanwhile the thread is blocked and its vCPU runs its other threads (the VMM then
 * queues HVM_WORK_WAKE on the completion), or, with none, halts right after the post until the
 * completion resumes it (thread_post_wait_event). */
#include "cpu.h"
#include "events.h"
#include "hypercall.h"
#include "kernel.h"

/* One event at a time on a group's channel: a nested thread shares its creator's (paper III-D). */
static void group_lock(struct evgroup *g)
{
    while (__atomic_exchange_n(&g->busy, 1, __ATOMIC_ACQUIRE))
        thread_wait_zero(&g->busy, &g->busy_waiters);
}

static void group_unlock(struct evgroup *g)
{
    __atomic_store_n(&g->busy, 0, __ATOMIC_RELEASE);
    thread_wake_waiters(&g->busy_waiters);
}

static void post_and_wait(struct hvm_event *ev, int wait)
{
    ev->seq++;
    __atomic_store_n(&ev->state, HVM_EVENT_POSTED, __ATOMIC_RELEASE);
    if (wait)
        thread_post_wait_event(ev);
    else
        hvm_hypercall(HVM_HC_POST_EVENT, (long)ev, ev->kind, 0, 0);
}

long event_syscall(struct thread *t, struct syscall_frame *f)
{
    struct hvm_event *ev = t->channel;
    group_lock(t->group);
    ev->kind = HVM_EVENT_SYSCALL;
    ev->nr = f->rax;
    ev->a0 = f->rdi;
    ev->a1 = f->rsi;
    ev->a2 = f->rdx;
    ev->a3 = f->r10;
    ev->a4 = f->r8;
    ev->a5 = f->r9;
    ev->result = -ENOSYS;
    ev->thread = t->id;
    /* The registers as the program left them at `syscall`: a fork child in the ROS continues the
     * program from exactly here (the runtime's partner loop restores them). */
    ev->rbx = f->rbx; ev->rcx = f->rcx; ev->rdx = f->rdx; ev->rsi = f->rsi; ev->rdi = f->rdi;
    ev->rbp = f->rbp; ev->rsp = f->rsp; ev->r8 = f->r8; ev->r9 = f->r9; ev->r10 = f->r10;
    ev->r11 = f->r11; ev->r12 = f->r12; ev->r13 = f->r13; ev->r14 = f->r14; ev->r15 = f->r15;
    ev->rflags = f->r11;
    t->fault_addr = t->fault_error = t->fault_repeats = 0;    /* a repeat must follow directly */
    post_and_wait(ev, 1);
    long result = (long)ev->result;
    group_unlock(t->group);
    return result;
}

/* A system call made by the AeroKernel on the thread's behalf (a nested thread's stack), forwarded
 * like one of the program's own. */
long event_call(struct thread *t, long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
    struct syscall_frame f = { .rax = (unsigned long)nr, .rdi = (unsigned long)a0,
                               .rsi = (unsigned long)a1, .rdx = (unsigned long)a2,
                               .r10 = (unsigned long)a3, .r8 = (unsigned long)a4,
                               .r9 = (unsigned long)a5 };
    return event_syscall(t, &f);
}

/* Have the partner touch [addr] (write: a write that changes nothing) so the ROS pages it in or
 * breaks copy-on-write: for AeroKernel code about to write program memory (copy_to_user failed). */
void event_fault_in(struct thread *t, unsigned long addr, int write)
{
    struct hvm_event *ev = t->channel;
    group_lock(t->group);
    ev->kind = HVM_EVENT_PAGE_FAULT;
    ev->addr = addr;
    ev->error = write ? 2 : 0;
    ev->rip = 0;
    ev->vector = T_PF;
    ev->thread = t->id;
    post_and_wait(ev, 1);
    group_unlock(t->group);
}

void event_thread_exit(struct thread *t, long value, int raw)
{
    struct evgroup *g = t->group;
    if (t->nested) {
        /* its creator's partner goes on; whoever joins it unmaps its stack */
        if (__atomic_sub_fetch(&g->nested, 1, __ATOMIC_ACQ_REL) == 0)
            thread_wake_waiters(&g->nested_waiters);
        thread_exit(value);
    }
    /* The partner serves the group's nested threads too: it must not end before they do. */
    thread_wait_zero(&g->nested, &g->nested_waiters);
    group_lock(g);
    struct hvm_event *ev = t->channel;
    ev->kind = HVM_EVENT_THREAD_EXIT;
    ev->result = value;
    ev->a0 = raw;                       /* 1: SYS_exit (no atexit handlers); 0: the function returned */
    ev->thread = t->id;
    post_and_wait(ev, 0);
    thread_exit(value);                 /* (the channel stays locked: the group is over) */
}

/* A nested thread's function returned (switch.S nested_thread_return). */
void nested_thread_exit(long value)
{
    event_thread_exit(thread_current(), value, 0);
}

static void forward_exception(struct thread *t, struct trapframe *tf, unsigned long cr2, unsigned long vector)
{
    struct hvm_event *ev = t->channel;
    group_lock(t->group);
    ev->kind = HVM_EVENT_EXCEPTION;
    ev->vector = vector;
    ev->addr = cr2;
    ev->error = tf->error;
    ev->rip = tf->rip;
    ev->thread = t->id;
    post_and_wait(ev, 1);
    group_unlock(t->group);
}

/* A #PF of program code. A not-present or protection fault in the lower half is the ROS's to
 * resolve: the partner replicates the access, the ROS pages it in or breaks copy-on-write, and
 * the instruction is restarted. The same fault again right after means the HRT's PML4 copy is
 * stale (the ROS added a top-level entry): re-merge and forward once more. A third time, the ROS
 * cannot resolve it for us (e.g. a fetch from a no-execute page): it becomes a SIGSEGV there. */
int event_page_fault(struct thread *t, struct trapframe *tf, unsigned long cr2)
{
    if (cr2 >= LOWER_HALF_END)
        return event_exception(t, tf, cr2);
    if (cr2 == t->fault_addr && tf->error == t->fault_error) {
        t->fault_repeats++;
    } else {
        t->fault_addr = cr2;
        t->fault_error = tf->error;
        t->fault_repeats = 0;
    }
    if (t->fault_repeats == 1)
        hvm_hypercall(HVM_HC_REMERGE, 0, 0, 0, 0);
    if (t->fault_repeats >= 2) {
        t->fault_repeats = 0;
        forward_exception(t, tf, cr2, T_PF);
        return 1;
    }
    struct hvm_event *ev = t->channel;
    group_lock(t->group);
    ev->kind = HVM_EVENT_PAGE_FAULT;
    ev->addr = cr2;
    ev->error = tf->error;
    ev->rip = tf->rip;
    ev->vector = T_PF;
    ev->thread = t->id;
    post_and_wait(ev, 1);
    group_unlock(t->group);
    return 1;
}

/* Any other exception of program code becomes the signal Linux would send (the partner maps the
 * vector and raises it); if the program survives it, the instruction is retried, as natively. */
int event_exception(struct thread *t, struct trapframe *tf, unsigned long cr2)
{
    forward_exception(t, tf, cr2, tf->vector);
    return 1;
}
