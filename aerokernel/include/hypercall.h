/* The one way out to the VMM: `out %eax, (%dx)` on HVM_PORT. */
#ifndef AK_HYPERCALL_H
#define AK_HYPERCALL_H

#include "hvm_abi.h"

/* EAX = number, arguments in RDI, RSI, RCX, R8; the result (negative errno on failure) in RAX.
 * "memory": the VMM may read or write guest memory (console buffers, the mailbox). */
static inline long hvm_hypercall(unsigned nr, long a0, long a1, long a2, long a3)
{
    long ret;
    register long r8 __asm__("r8") = a3;
    __asm__ volatile("outl %%eax, (%%dx)"
                     : "=a"(ret)
                     : "a"(nr), "d"(HVM_PORT), "D"(a0), "S"(a1), "c"(a2), "r"(r8)
                     : "memory");
    return ret;
}

#endif
