/* System calls made by code running on an HRT vCPU (ring 0), through LSTAR. */
#ifndef AK_SYSCALL_H
#define AK_SYSCALL_H

/* syscall.S has one 32-byte entry stub per CPU at syscall_entries + cpu * stride; each switches
 * to its CPU's stack (syscall_percpu[cpu]) without touching the caller's stack. */
#define SYSCALL_ENTRY_STRIDE 32

#define SYS_getpid      39
#define AEROKERNEL_PID  0x4852          /* "HR": getpid as answered by the AeroKernel itself */

#ifndef __ASSEMBLER__
/* The frame syscall_common builds on the syscall stack. rax holds the number on entry and the
 * result on return; rcx the return RIP, r11 the caller's RFLAGS; rsp is the caller's RSP. */
struct syscall_frame {
    unsigned long r15, r14, r13, r12, r11, r10, r9, r8;
    unsigned long rbp, rdi, rsi, rdx, rcx, rbx, rax;
    unsigned long rsp;
};

struct syscall_percpu {
    unsigned long scratch_rsp;      /* the caller's RSP, for the instant before it is pushed */
    unsigned long stack_top;
};

extern struct syscall_percpu syscall_percpu[];
extern char syscall_entries[];

void syscall_dispatch(struct syscall_frame *f);
struct thread;
int local_syscall(struct thread *t, struct syscall_frame *f);      /* local.c */
#endif

#endif
