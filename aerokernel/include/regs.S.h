/* Saving and restoring the 15 general registers in one order, shared by the exception stubs
 * (isr.S) and the SYSCALL entry (syscall.S): struct trapframe (trap.h) and struct syscall_frame
 * (syscall.h) lay them out in exactly this order, R15 at the lowest address. */
#ifndef AEROKERNEL_REGS_S_H
#define AEROKERNEL_REGS_S_H
#ifdef __ASSEMBLER__

.macro PUSH_GPRS
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %rbp
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
.endm

.macro POP_GPRS
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rbp
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
.endm

#endif
#endif
