/* Assembly halves of the self-tests: instructions at known addresses. */
#include "selftest.h"
#include "syscall.h"
#include "trap.h"

    .text

/* long st_divide(long dividend, long divisor): a 3-byte `div %rsi`; with divisor 0 the #DE
 * handler resumes right after it (exception table), leaving RAX = dividend. */
    .globl st_divide, st_divide_insn
    .type st_divide, @function
st_divide:
    movq    %rdi, %rax
    xorl    %edx, %edx
st_divide_insn:
    divq    %rsi
st_divide_resume:
    ret
    .size st_divide, . - st_divide
    EXTABLE(st_divide_insn, st_divide_resume)

/* void st_int3(void): the #BP frame's RIP must be st_int3_after. */
    .globl st_int3, st_int3_after
    .type st_int3, @function
st_int3:
    int3
st_int3_after:
    ret
    .size st_int3, . - st_int3

/* long st_syscall_raw(long nr): `syscall` with no arguments; returns RAX. */
    .globl st_syscall_raw
    .type st_syscall_raw, @function
st_syscall_raw:
    movq    %rdi, %rax
    syscall
    ret
    .size st_syscall_raw, . - st_syscall_raw

/* void st_syscall_run(struct st_syscall_out *out)
 * Fills the 128-byte red zone below RSP and the registers with patterns, does getpid with
 * `syscall`, and records every register and the red zone as the syscall left them. R15 holds
 * the RSP the syscall must return with. Nothing is written at or below RSP - 128 before the
 * check: right after the syscall we step 256 bytes down without touching memory or flags. */
    .globl st_syscall_run, st_syscall_ret
    .type st_syscall_run, @function
st_syscall_run:
    pushq   %rbx
    pushq   %rbp
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    pushq   %rdi                    /* out, at (%rsp) */
    movabsq $ST_REDZONE, %rax
    xorl    %ecx, %ecx
1:  leaq    (%rax,%rcx), %rdx
    movq    %rdx, -128(%rsp,%rcx,8)
    incl    %ecx
    cmpl    $16, %ecx
    jb      1b
    movabsq $ST_RBX, %rbx
    movabsq $ST_RBP, %rbp
    movabsq $ST_R12, %r12
    movabsq $ST_R13, %r13
    movabsq $ST_R14, %r14
    movabsq $ST_RDX, %rdx
    movabsq $ST_RSI, %rsi
    movabsq $ST_RDI, %rdi
    movabsq $ST_R8, %r8
    movabsq $ST_R9, %r9
    movabsq $ST_R10, %r10
    movq    %rsp, %r15
    movl    $SYS_getpid, %eax
    syscall
st_syscall_ret:
    leaq    -256(%rsp), %rsp
    pushq   %r15
    pushq   %r14
    pushq   %r13
    pushq   %r12
    pushq   %r11
    pushq   %r10
    pushq   %r9
    pushq   %r8
    pushq   %rbp
    pushq   %rdi
    pushq   %rsi
    pushq   %rdx
    pushq   %rcx
    pushq   %rbx
    pushq   %rax
    movq    %rsp, %rsi
    leaq    15 * 8 + 256(%rsp), %rbx    /* RSP as the syscall returned it */
    movq    (%rbx), %rdi                /* out */
    cld
    movl    $15, %ecx
    rep movsq                           /* out->rax .. out->r15 */
    movq    %rbx, %rax
    stosq                               /* out->rsp */
    leaq    -128(%rbx), %rsi
    movl    $16, %ecx
    rep movsq                           /* out->redzone */
    movq    %rbx, %rsp
    popq    %rdi
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbp
    popq    %rbx
    ret
    .size st_syscall_run, . - st_syscall_run
