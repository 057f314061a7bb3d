/* mmap_loop [N]: micro-benchmark of page-fault and mapping cost: N times mmap one 4 KiB
 * anonymous page, write to it (demand fault), check it, munmap it; then prints N.
 * Default N 1000. */
#include <stdio.h>
#include <sys/mman.h>
#include "common.h"

int main(int argc, char **argv)
{
    long n = arg_long(argc, argv, 1, 1000);
    for (long i = 0; i < n; i++) {
        volatile unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("mmap_loop: mmap failed at %ld\n", i);
            return 1;
        }
        if (p[100] != 0) {
            printf("mmap_loop: fresh page not zero at %ld\n", i);
            return 1;
        }
        p[0] = (unsigned char)i;
        p[4095] = (unsigned char)i;
        if (p[0] != (unsigned char)i || munmap((void *)p, 4096) != 0) {
            printf("mmap_loop: check/munmap failed at %ld\n", i);
            return 1;
        }
    }
    printf("%ld\n", n);
    return 0;
}
