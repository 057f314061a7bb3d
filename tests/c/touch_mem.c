/* touch_mem MIB: allocates MIB mebibytes in 4 MiB chunks (each small enough for Linux's heuristic
 * overcommit to grant), writes every page, prints a checksum. */
#include <stdio.h>
#include <stdlib.h>

#define CHUNK (4UL << 20)

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 1;
    size_t chunks = ((size_t)mib << 20) / CHUNK;
    unsigned long sum = 0;
    for (size_t c = 0; c < chunks; c++) {
        unsigned char *p = malloc(CHUNK);
        if (!p) {
            puts("malloc failed");
            return 1;
        }
        for (size_t i = 0; i < CHUNK; i += 4096)
            p[i] = (unsigned char)((c * CHUNK + i) >> 12);
        for (size_t i = 0; i < CHUNK; i += 4096)
            sum += p[i];
    }
    printf("touched %ld MiB, sum %lu\n", mib, sum);
    return 0;
}
