/* Split execution, the ROS side of the Multiverse runtime (DESIGN.md sections 1 and 4; paper
 * Fig. 6 and 7): install and boot the AeroKernel, merge, start main() as an HRT thread, and be
 * its partner until it ends. */
#ifndef MV_SPLIT_H
#define MV_SPLIT_H

#include "runtime.h"

typedef int (*mv_main_fn)(int, char **, char **);

/* 0: main ran in the HRT and *status is what it returned (or passed to exit);
 * < 0: the HVM could not take the program (no HRT, HRT busy, image refused): run main natively. */
int mv_split_main(int hvm_fd, const void *image, unsigned long image_len, mv_main_fn main,
                  int argc, char **argv, char **envp, int *status);

/* split_asm.S */
long mv_forward_syscall(struct hvm_event *ev);   /* issue the event's syscall here, in the ROS */
extern char mv_hrt_return[];                     /* where main returns to in the HRT */
long mv_call_on_stack(void *arg, long (*fn)(void *), void *stack_top);  /* fn(arg) on that stack */
__attribute__((noreturn))
void mv_unmap_and_exit(void *addr, unsigned long len, long status);    /* munmap, then SYS_exit */

#endif
