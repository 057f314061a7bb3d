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

#endif
