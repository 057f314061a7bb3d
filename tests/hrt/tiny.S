/* A minimal HRT kernel for the VMM tests (tests/test_hrt_vmm.py): console line, an IDT with a
   #BP gate that reports the exception and returns, HRT_READY, then the WAIT_EVENT work loop
   (HVM_WORK_CALL: call mailbox.func(mailbox.arg), CALL_DONE(result)). Built by the test. */
    .section .text
    .globl _start
_start:
    mov %rdi, %r15                 # boot info phys
    lea msg(%rip), %rdi
    mov $msglen, %rsi
    mov $0x81, %eax                # CONSOLE_WRITE
    mov $0xf00d, %dx
    out %eax, (%dx)
    # load IDT with gate 3 -> bp_handler (IST 0 here, just a test)
    lea idt(%rip), %rax
    lea bp_handler(%rip), %rbx
    mov %bx, 3*16(%rax)            # offset lo
    movw $0x08, 3*16+2(%rax)       # selector
    movb $0, 3*16+4(%rax)          # ist
    movb $0x8e, 3*16+5(%rax)       # present, interrupt gate
    shr $16, %rbx
    mov %bx, 3*16+6(%rax)
    shr $16, %rbx
    mov %ebx, 3*16+8(%rax)
    lidt idtr(%rip)
    int3
    mov $0x82, %eax                # HRT_READY
    xor %edi, %edi
    out %eax, (%dx)
loop:
    mov $0x85, %eax                # WAIT_EVENT
    xor %edi, %edi
    xor %esi, %esi                 # any kind of work
    mov $0xf00d, %dx
    out %eax, (%dx)
    test %rax, %rax                # 0: no work yet: halt until the VMM has some
    jnz 1f
    sti
    hlt
    cli
    jmp loop
1:
    # rax = kind; mailbox at boot_info->mailbox_pbase (field 14)
    movabs $0xffff800000000000, %r13
    mov 14*8(%r13,%r15), %r14
    add %r13, %r14
    mov 8(%r14), %rbx              # func
    mov 16(%r14), %rdi             # arg
    call *%rbx
    mov %rax, 24(%r14)
    mov %rax, %rdi
    mov $0x84, %eax                # CALL_DONE
    mov $0xf00d, %dx
    out %eax, (%dx)
    jmp loop
bp_handler:
    mov (%rsp), %rsi               # rip pushed
    mov $3, %edi
    xor %ecx, %ecx
    xor %r8d, %r8d
    mov $0x83, %eax
    mov $0xf00d, %dx
    out %eax, (%dx)
    iretq
    .globl add1000
add1000:
    lea 0x1000(%rdi), %rax
    ret
    .section .rodata
msg: .ascii "tiny kernel up\n"
    .set msglen, . - msg
    .section .data
    .balign 16
idt: .fill 64, 8, 0
idtr: .word 32*16-1
      .quad idt
