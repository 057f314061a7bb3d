/* HRT threads: kernel threads and top-level program threads (DESIGN.md section 4).
 *
 * Each HRT vCPU has its own run queue and an idle thread (the boot context running the work
 * loop). Scheduling is cooperative: a thread runs until it yields, blocks, or exits; when a
 * vCPU has nothing to run, its idle thread asks the VMM for work (WAIT_EVENT) and, if there is
 * none, halts: the VMM does not run it again until there is some.
 *
 * A top-level thread runs program code in ring 0 on the stack its partner allocated in the ROS,
 * with the partner's FS base (TLS) superposed. Its system calls and lower-half page faults are
 * forwarded over its execution group's event channel (events.c); while the partner works, the
 * thread blocks and other threads of its vCPU run (thread_wait_event), or, with none, the vCPU
 * halts until the completion's WAKE. A program thread's system calls and program-code exceptions
 * run on its own kernel stack (not the vCPU's syscall or IST stacks), so it can block there. */
#ifndef AK_THREAD_H
#define AK_THREAD_H

#include <stdint.h>
#include "hvm_abi.h"
#include "spinlock.h"

#define MAX_THREADS     512
#define THREAD_STACK_SIZE 0x4000UL

enum thread_state { TS_FREE, TS_RUNNABLE, TS_RUNNING, TS_BLOCKED, TS_DEAD };

/* An execution group (paper III-D): a top-level thread, its partner and channel, and the nested
 * threads created from its code, which funnel their events through the same channel, one at a
 * time. It lives in the top-level thread's struct, which outlives its nested threads: the
 * top-level thread's exit waits until they have all ended. */
struct evgroup {
    volatile int busy;                  /* the channel carries a member's event (group_lock) */
    volatile unsigned long busy_waiters;    /* vCPUs (bits) that had a thread waiting for it */
    volatile int nested;                /* nested threads not yet ended */
    volatile unsigned long nested_waiters;  /* vCPUs that had a thread waiting for that to be 0 */
};

struct thread {
    unsigned long rsp;                  /* saved kernel RSP while switched out (switch.S) */
    unsigned long kstack_top;
    unsigned id;
    volatile int state;
    unsigned cpu;                       /* the vCPU whose run queue holds it */
    int joiner_cpu;                     /* a vCPU waiting in thread_join for it, or -1 */
    volatile long exit_value;
    struct thread *next;                /* run-queue link */
    /* a kernel thread */
    long (*fn)(long);
    long arg;
    /* a top-level program thread */
    unsigned long entry, args[3], user_stack, fs_base;
    struct hvm_event *channel;          /* the execution group's event record (lower half, merged) */
    unsigned long ros_pid, ros_tid;     /* its partner's process and thread ids (local getpid/gettid) */
    unsigned long fault_addr, fault_error;   /* the last forwarded page fault, for re-merge */
    unsigned fault_repeats;
    struct hvm_event *waiting_on;       /* blocked until this event completes (thread_wait_event) */
    volatile int *waiting_word;         /* or until this word is 0 (thread_wait_zero) */
    struct thread *next_waiter;         /* the vCPU's list of such threads */
    struct evgroup own_group;           /* a top-level thread's execution group */
    struct evgroup *group;              /* the group it belongs to (its own, or its creator's) */
    int nested;                         /* created from HRT code: shares its creator's partner */
    unsigned long stack_base, stack_size;   /* a nested thread's stack (mapped by the partner) */
    /* A program thread's x87/SSE state while switched out (fxsave; kernel code never touches
     * these registers: -mgeneral-regs-only). */
    unsigned char fpu[512] __attribute__((aligned(16)));
};

struct runqueue {
    struct spinlock lock;
    struct thread *head, *tail;
};

void thread_init_cpu(unsigned cpu);
struct thread *thread_current(void);
struct thread *thread_create(long (*fn)(long), long arg, unsigned cpu);
struct thread *thread_create_program(const struct hvm_mailbox *mb, unsigned cpu, unsigned long id);
void thread_yield(void);
void __attribute__((noreturn)) thread_exit(long value);
long thread_join(struct thread *t);
int thread_run_queued(void);            /* idle: run queued threads until none; how many ran */
long thread_wait_for_work(unsigned long kinds);   /* one WAIT_EVENT for these kinds; halts if none */
void thread_wait_event(struct hvm_event *ev);     /* block the current thread until ev completes */
void thread_post_wait_event(struct hvm_event *ev);    /* post ev, then as thread_wait_event */
void thread_wait_zero(volatile int *word, volatile unsigned long *waiters);  /* block until *word == 0 */
void thread_wake_waiters(volatile unsigned long *waiters);   /* after clearing such a word */
void thread_preempt(void);              /* the VMM's time-slice interrupt on a program thread */
struct thread *thread_create_nested(struct thread *creator, unsigned long fn, unsigned long arg,
                                    unsigned long sp, unsigned long stack_base,
                                    unsigned long stack_size, unsigned cpu);
struct thread *thread_find(unsigned long id);

/* switch.S */
void switch_to(unsigned long *save_rsp, unsigned long next_rsp);
void thread_trampoline(void);
void __attribute__((noreturn)) enter_program(unsigned long rip, unsigned long rsp,
                                             unsigned long a0, unsigned long a1, unsigned long a2);
void nested_thread_return(void);        /* a nested thread's function returns here (events.c) */

#endif
