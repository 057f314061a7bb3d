/* _start: the entry of every HRT vCPU.
 * The VMM enters in long mode, ring 0, paging on, IF = 0, RSP = top of this vCPU's boot stack
 * (HIGH_BASE-mapped), RDI = guest-physical address of this vCPU's struct hvm_boot_info.
 * We load our own GDT (the VMM's boot GDT is only good enough to get here), reload every segment
 * register we rely on (CS by a far return), and call kmain(boot_info_phys). FS and GS are left
 * alone: their bases belong to the program code the HRT will run. */
#include "gdt.h"

    .section .text.boot, "ax"
    .globl _start
    .type _start, @function
_start:
    cld
    lgdt    gdt_desc(%rip)
    movl    $GDT_KDATA, %eax
    movl    %eax, %ss
    movl    %eax, %ds
    movl    %eax, %es
    pushq   $GDT_KCODE
    leaq    1f(%rip), %rax
    pushq   %rax
    lretq
1:  andq    $-16, %rsp              /* ABI alignment at the call (RDI untouched so far) */
    xorl    %ebp, %ebp              /* end of the frame-pointer chain for debuggers */
    call    kmain
2:  hlt                             /* kmain does not return */
    jmp     2b
    .size _start, . - _start

/* lgdt operand: 16-bit limit, 64-bit linear base. */
    .section .rodata
    .balign 16
    .globl gdt_desc
gdt_desc:
    .word   GDT_ENTRIES * 8 - 1
    .quad   gdt
