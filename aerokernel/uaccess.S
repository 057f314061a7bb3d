/* Copies between the AeroKernel and program memory (the merged lower half). A fault on the
 * program's side (not mapped yet, or read-only: CR0.WP holds in ring 0) resumes at the fixup,
 * which returns -EFAULT; the caller then forwards the call to the partner instead (local.c). */
#include "trap.h"

    .text
    .globl copy_to_user
    .type copy_to_user, @function
/* long copy_to_user(void *dst, const void *src, unsigned long n): 0, or -EFAULT */
copy_to_user:
    movq    %rdx, %rcx
1:  rep movsb
    xorl    %eax, %eax
    ret
2:  movq    $-14, %rax
    ret
    EXTABLE(1b, 2b)
    .size copy_to_user, . - copy_to_user
