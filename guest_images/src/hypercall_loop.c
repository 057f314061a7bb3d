/* hypercall_loop [N]: micro-benchmark of the bare hypercall. In ring 0 (the program's main runs
 * in the HRT after `mvemu hybridize`) it issues N GET_STATE hypercalls (`out %eax, (%dx)` to the
 * HVM port, DESIGN.md section 8), each of which must report a booted HRT; in ring 3 (natively, or
 * un-hybridized under mvemu) port I/O is not allowed and it issues none. Either way it prints N,
 * so the output is the same everywhere; only the hybridized run measures anything. Default N 1000. */
#include <stdio.h>
#include "common.h"

#define HVM_PORT 0xf00d
#define HVM_HC_GET_STATE 0x0f
#define HVM_STATE_BOOTED 2

static long hypercall0(long nr)
{
    long rax = nr;
    __asm__ volatile("outl %%eax, %%dx" : "+a"(rax) : "d"(HVM_PORT) : "memory");
    return rax;
}

int main(int argc, char **argv)
{
    long n = arg_long(argc, argv, 1, 1000), bad = 0;
    unsigned short cs;
    __asm__("mov %%cs, %0" : "=r"(cs));
    if ((cs & 3) == 0)
        for (long i = 0; i < n; i++)
            bad += !(hypercall0(HVM_HC_GET_STATE) & HVM_STATE_BOOTED);
    if (bad) {
        printf("hypercall_loop: %ld of %ld GET_STATE hypercalls failed\n", bad, n);
        return 1;
    }
    printf("%ld\n", n);
    return 0;
}
