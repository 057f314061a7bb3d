/* Exception entry stubs for vectors 0-31, and 32: the VMM's time-slice interrupt (T_PREEMPT).
 * Every gate names an IST stack, so we always start on a fresh per-CPU stack, never on the
 * interrupted code's (possibly a program's, with a red zone). The VMM delivers exceptions like
 * the CPU: SS, RSP, RFLAGS, CS, RIP and, for some vectors, an error code.
 * Each stub makes the frame uniform (a 0 error code where the CPU pushes none), pushes its
 * vector, and the common path saves all general registers into a struct trapframe (trap.h),
 * calls trap(tf), restores them and returns with iretq. An exception of program code continues on
 * the program thread's own kernel stack (trap_stack moves the frame there), where the thread may
 * block while its partner resolves it, and other threads of the vCPU use the IST meanwhile. */
#include "trap.h"
#include "regs.S.h"

/* Vectors for which the CPU pushes an error code (the VMM uses the same set). */
#define HAS_ERR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

    .text
    .altmacro
    .macro ISR v
    .balign 16
    .globl isr\v
    .type isr\v, @function
isr\v:
    .if !HAS_ERR(\v)
    pushq   $0
    .endif
    pushq   $\v
    jmp     isr_common
    .size isr\v, . - isr\v
    .endm

    .set vec, 0
    .rept NUM_VECTORS
    ISR %vec
    .set vec, vec + 1
    .endr

    .balign 16
    .type isr_common, @function
isr_common:
    cld                             /* the C ABI wants DF = 0; iretq restores the caller's */
    PUSH_GPRS
    movq    %rsp, %rdi              /* struct trapframe *; RSP is 16-byte aligned here: */
    call    trap_stack              /* IST top (aligned) - 22 words. Where to go on: here, or */
    movq    %rax, %rsp              /* a copy of the frame on the thread's own kernel stack */
    movq    %rsp, %rdi
    call    trap
    POP_GPRS
    addq    $16, %rsp               /* vector, error code */
    iretq
    .size isr_common, . - isr_common

/* The stub addresses, for idt.c. */
    .macro ISR_ADDR v
    .quad isr\v
    .endm

    .section .rodata
    .balign 8
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept NUM_VECTORS
    ISR_ADDR %vec
    .set vec, vec + 1
    .endr
