/* mremap_shrink: 3000 rounds of a shrinking MREMAP_FIXED move of a 64 KiB mapping onto 16 KiB: the
 * moved pages keep their contents and the dropped tail gives its frames back (run under a small
 * --mem, a leak ends in the OOM killer). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
int main(void) {
    for (int i = 0; i < 3000; i++) {
        char *p = mmap(NULL, 16 << 12, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
        memset(p, i, 16 << 12);
        char *dst = mmap(NULL, 4 << 12, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
        char *q = mremap(p, 16 << 12, 4 << 12, MREMAP_MAYMOVE|MREMAP_FIXED, dst);
        if (q == MAP_FAILED || q[4095] != (char)i) { puts("bad"); return 1; }
        munmap(q, 4 << 12);
    }
    puts("ok");
    return 0;
}
