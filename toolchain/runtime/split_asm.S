/* The two pieces of the split runtime that must be assembly. */
#include "hvm_abi.h"

#define SYS_clone   56
#define SYS_fork    57
#define SYS_vfork   58
#define SYS_clone3  435
#define SYS_munmap  11
#define SYS_exit    60
#define SYS_exit_group 231

/* Every register but RBX, RAX and RSP from the record at RBX. */
.macro LOAD_REGS
    movq    HVM_EVOFF_RDX(%rbx), %rdx
    movq    HVM_EVOFF_RSI(%rbx), %rsi
    movq    HVM_EVOFF_RDI(%rbx), %rdi
    movq    HVM_EVOFF_RBP(%rbx), %rbp
    movq    HVM_EVOFF_R8(%rbx), %r8
    movq    HVM_EVOFF_R9(%rbx), %r9
    movq    HVM_EVOFF_R10(%rbx), %r10
    movq    HVM_EVOFF_R11(%rbx), %r11
    movq    HVM_EVOFF_R12(%rbx), %r12
    movq    HVM_EVOFF_R13(%rbx), %r13
    movq    HVM_EVOFF_R14(%rbx), %r14
    movq    HVM_EVOFF_R15(%rbx), %r15
    movq    HVM_EVOFF_RCX(%rbx), %rcx   /* the return address, as SYSCALL leaves it in RCX */
.endm

    .text
/* main() of the program returns here in the HRT (it is the return address on the HRT stack):
 * the thread-exit call ends the HRT thread with main's result. Should main() ever return in the
 * ROS instead (a signal handler longjmp'ed out of a forwarded fault), end the process with it. */
    .globl mv_hrt_return
    .hidden mv_hrt_return
    .type mv_hrt_return, @function
mv_hrt_return:
    movq    %rax, %rdi
    movl    $HVM_HRT_SYS_THREAD_EXIT, %eax
    syscall
    movl    $SYS_exit_group, %eax
    syscall
    ud2
    .size mv_hrt_return, . - mv_hrt_return

/* long mv_forward_syscall(struct hvm_event *ev): issue ev's system call here in the ROS and
 * return its result. In the child of a forwarded fork, vfork or clone (result 0), this ROS
 * thread becomes the program: it takes the HRT thread's registers from the record (RSP from the
 * clone's new stack, if one was given) and continues right after the program's `syscall`, in
 * ring 3. Nothing is pushed on the program's stack on the way (its red zone and, after vfork, its
 * parent's stack stay untouched). A child with a stack of its own (a thread: it shares the
 * record's memory with the partner) sets ev->child_ready once it holds every register, so the
 * partner knows the record may be reused; it uses one slot of its new, still empty stack to do so. */
    .globl mv_forward_syscall
    .hidden mv_forward_syscall
    .type mv_forward_syscall, @function
mv_forward_syscall:
    pushq   %rbx
    movq    %rdi, %rbx
    movq    HVM_EVOFF_NR(%rbx), %rax
    movq    HVM_EVOFF_A0(%rbx), %rdi
    movq    HVM_EVOFF_A1(%rbx), %rsi
    movq    HVM_EVOFF_A2(%rbx), %rdx
    movq    HVM_EVOFF_A3(%rbx), %r10
    movq    HVM_EVOFF_A4(%rbx), %r8
    movq    HVM_EVOFF_A5(%rbx), %r9
    syscall
    testq   %rax, %rax
    jnz     1f
    movq    HVM_EVOFF_NR(%rbx), %rcx
    cmpq    $SYS_fork, %rcx
    je      2f
    cmpq    $SYS_vfork, %rcx
    je      2f
    cmpq    $SYS_clone, %rcx
    je      3f
    cmpq    $SYS_clone3, %rcx
    je      4f
1:  popq    %rbx
    ret

3:  movq    HVM_EVOFF_A1(%rbx), %rsp    /* clone: the child's stack, if given */
    testq   %rsp, %rsp
    jnz     5f
    jmp     2f
4:  movq    HVM_EVOFF_A0(%rbx), %rcx    /* clone3: struct clone_args: stack at 40, size at 48 */
    movq    40(%rcx), %rsp
    testq   %rsp, %rsp
    jz      2f
    addq    48(%rcx), %rsp
    jmp     5f
2:  movq    HVM_EVOFF_RSP(%rbx), %rsp
    LOAD_REGS
    movq    HVM_EVOFF_RBX(%rbx), %rbx
    xorl    %eax, %eax                  /* the child's result */
    jmpq    *%rcx
5:  LOAD_REGS
    pushq   HVM_EVOFF_RBX(%rbx)         /* the new stack's first slot, popped at once */
    movq    $1, HVM_EVOFF_CHILD_READY(%rbx)
    popq    %rbx
    xorl    %eax, %eax
    jmpq    *%rcx
    .size mv_forward_syscall, . - mv_forward_syscall

/* long mv_invoke_func(void *(*fn)(void *), void *arg, void *orig): the target of the SDK's
 * hrt_invoke_func in HRT context (toolchain/overrides.toml): ask the partner, through the
 * forwarded pseudo system call HVM_HRT_SYS_INVOKE, to run fn(arg) in a new top-level HRT thread
 * and wait for its result. `orig` (the SDK's native fallback) is not needed here. */
    .globl mv_invoke_func
    .hidden mv_invoke_func
    .type mv_invoke_func, @function
mv_invoke_func:
    movl    $HVM_HRT_SYS_INVOKE, %eax
    syscall
    ret
    .size mv_invoke_func, . - mv_invoke_func

/* long mv_call_on_stack(void *arg, long (*fn)(void *), void *stack_top): fn(arg) with RSP at
 * stack_top (16-byte aligned), then back on this stack with fn's result. */
    .globl mv_call_on_stack
    .hidden mv_call_on_stack
    .type mv_call_on_stack, @function
mv_call_on_stack:
    pushq   %rbp
    movq    %rsp, %rbp
    movq    %rdx, %rsp
    callq   *%rsi
    movq    %rbp, %rsp
    popq    %rbp
    ret
    .size mv_call_on_stack, . - mv_call_on_stack

/* void mv_unmap_and_exit(void *addr, unsigned long len, long status): munmap [addr, addr+len),
 * which may hold the stack this runs on, then end this thread with SYS_exit(status). Nothing
 * touches memory after the munmap. */
    .globl mv_unmap_and_exit
    .hidden mv_unmap_and_exit
    .type mv_unmap_and_exit, @function
mv_unmap_and_exit:
    movq    %rdx, %r12
    movl    $SYS_munmap, %eax
    syscall
    movq    %r12, %rdi
1:  movl    $SYS_exit, %eax
    syscall
    jmp     1b
    .size mv_unmap_and_exit, . - mv_unmap_and_exit
