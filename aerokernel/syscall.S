/* SYSCALL entry for code running in ring 0 on an HRT vCPU.
 *
 * The VMM performs the instruction (Unicorn does not): RCX = return RIP, R11 = RFLAGS,
 * RFLAGS &= ~FMASK, RIP = LSTAR. RSP is still the caller's, and the caller may be a program
 * compiled with a red zone: nothing may be pushed before we are on our own stack. With no
 * swapgs / GS base to find per-CPU data, each CPU gets its own entry stub (LSTAR differs per
 * CPU) that saves RSP into, and loads the stack from, its own syscall_percpu[] slot with
 * RIP-relative moves.
 *
 * Return: sysretq would always land in ring 3, so we restore RFLAGS with popfq while still on
 * our stack, load the caller's RSP with a plain mov, and jump to RCX. RCX and R11 end up as the
 * CPU leaves them after SYSCALL (return RIP, RFLAGS); every other register except RAX (the
 * result) is preserved. */
#include "gdt.h"
#include "syscall.h"
#include "regs.S.h"

    .text
    .altmacro
    .macro SYSCALL_ENTRY n
    .balign SYSCALL_ENTRY_STRIDE
syscall_entry\n:
    movq    %rsp, syscall_percpu + 16 * \n (%rip)
    movq    syscall_percpu + 16 * \n + 8 (%rip), %rsp
    pushq   syscall_percpu + 16 * \n (%rip)
    .byte   0xe9                    /* jmp rel32, spelled out so the stub's size is known here */
    .long   syscall_common - . - 4
    .if . - syscall_entry\n > SYSCALL_ENTRY_STRIDE
    .error "syscall entry stub too long"
    .endif
    .endm

    .balign SYSCALL_ENTRY_STRIDE
    .globl syscall_entries
syscall_entries:
    .set cpu, 0
    .rept MAX_CPUS
    SYSCALL_ENTRY %cpu
    .set cpu, cpu + 1
    .endr
    .size syscall_entries, . - syscall_entries

    .balign 16
    .globl syscall_common
    .type syscall_common, @function
syscall_common:                     /* [rsp] = the caller's RSP */
    PUSH_GPRS
    movq    %rsp, %rdi              /* struct syscall_frame * (16 words: RSP stays aligned) */
    call    syscall_dispatch
    POP_GPRS                        /* r11 = the caller's RFLAGS, rcx = the return RIP, rax = the result */
    pushq   %r11
    popfq
    movq    (%rsp), %rsp            /* the caller's stack, untouched below its RSP */
    jmpq    *%rcx
    .size syscall_common, . - syscall_common
