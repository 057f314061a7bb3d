/* touch_pages [N]: micro-benchmark of demand paging alone: one anonymous mapping of N pages
 * (default 1000), one write to each page (N demand faults, no system call between them), a
 * checksum read back, munmap; then prints N and the checksum. Hybridized, each first touch is a
 * page fault in the ROS half that the AeroKernel forwards to the partner. */
#include <stdio.h>
#include <sys/mman.h>
#include "common.h"

int main(int argc, char **argv)
{
    long n = arg_long(argc, argv, 1, 1000);
    size_t len = (size_t)(n ? n : 1) * 4096;
    volatile unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("touch_pages: mmap of %ld pages failed\n", n);
        return 1;
    }
    for (long i = 0; i < n; i++)
        p[i * 4096 + (i & 4095)] = (unsigned char)(i * 7 + 1);
    unsigned long sum = 0;
    for (long i = 0; i < n; i++)
        sum = sum * 31 + p[i * 4096 + (i & 4095)];
    if (munmap((void *)p, len) != 0) {
        printf("touch_pages: munmap failed\n");
        return 1;
    }
    printf("%ld %lu\n", n, sum);
    return 0;
}
