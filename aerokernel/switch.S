/* Thread switching and the entry of a new thread.
 *
 * switch_to(&prev->rsp, next->rsp): push the callee-saved registers, save RSP, load the next
 * thread's RSP, pop its callee-saved registers and return into it. A new thread's stack is built
 * by thread.c to look like a switched-out thread whose return address is thread_trampoline. */
    .text
    .globl switch_to
    .type switch_to, @function
switch_to:
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .size switch_to, . - switch_to

    .globl thread_trampoline
    .type thread_trampoline, @function
thread_trampoline:
    xorl    %ebp, %ebp              /* the end of the frame-pointer chain */
    call    thread_start            /* does not return */
    ud2
    .size thread_trampoline, . - thread_trampoline

/* enter_program(rip, rsp, a0, a1, a2): run program code in ring 0 on its own stack, as if the
 * function at rip had been called (the return address is already on that stack) with three
 * arguments. Every other register is cleared so no kernel value leaks into the program, and the
 * x87/SSE state is the one a new Linux thread starts with (FCW 0x37f, MXCSR 0x1f80), not what
 * the vCPU's previous program thread left. RFLAGS is 0x202 (IF set, as in a Linux process): the
 * VMM's time-slice interrupt (T_PREEMPT) is taken only while IF is set. */
    .globl enter_program
    .type enter_program, @function
enter_program:
    fninit
    ldmxcsr mxcsr_default(%rip)
    pushq   $0x202                  /* IF set: the VMM's time-slice interrupt may preempt it */
    popfq
    movq    %rdi, %rax
    movq    %rsi, %rsp
    movq    %rdx, %rdi
    movq    %rcx, %rsi
    movq    %r8, %rdx
    xorl    %ecx, %ecx
    xorl    %r8d, %r8d
    xorl    %r9d, %r9d
    xorl    %r10d, %r10d
    xorl    %r11d, %r11d
    xorl    %ebx, %ebx
    xorl    %ebp, %ebp
    xorl    %r12d, %r12d
    xorl    %r13d, %r13d
    xorl    %r14d, %r14d
    xorl    %r15d, %r15d
    jmpq    *%rax
    .size enter_program, . - enter_program

/* A nested thread's function returns here, still on its program stack (16-byte aligned again after
 * the ret): its result ends the thread (events.c nested_thread_exit, which does not return). */
    .globl nested_thread_return
    .type nested_thread_return, @function
nested_thread_return:
    movq    %rax, %rdi
    call    nested_thread_exit
    ud2
    .size nested_thread_return, . - nested_thread_return

    .section .rodata
    .align 4
mxcsr_default:
    .long   0x1f80
