/* Event channels: what a top-level HRT thread cannot do itself goes to its partner in the ROS
 * (DESIGN.md sections 1 and 4). */
#ifndef AK_EVENTS_H
#define AK_EVENTS_H

#include "syscall.h"
#include "thread.h"
#include "trap.h"

#define LOWER_HALF_END  0x0000800000000000UL   /* the merged (ROS) half ends here */

long event_syscall(struct thread *t, struct syscall_frame *f);
void event_thread_exit(struct thread *t, long value, int raw) __attribute__((noreturn));
int event_page_fault(struct thread *t, struct trapframe *tf, unsigned long cr2);
int event_exception(struct thread *t, struct trapframe *tf, unsigned long cr2);
long event_call(struct thread *t, long nr, long a0, long a1, long a2, long a3, long a4, long a5);
void event_fault_in(struct thread *t, unsigned long addr, int write);
void nested_thread_exit(long value) __attribute__((noreturn));
long copy_to_user(void *dst, const void *src, unsigned long n);     /* uaccess.S: 0 or -EFAULT */

#endif
