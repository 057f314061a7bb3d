/* touch_mem MIB: allocates MIB mebibytes, writes every page, prints a checksum. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 1;
    size_t n = (size_t)mib << 20;
    unsigned char *p = malloc(n);
    if (!p) {
        puts("malloc failed");
        return 1;
    }
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (unsigned char)(i >> 12);
    for (size_t i = 0; i < n; i += 4096)
        sum += p[i];
    printf("touched %ld MiB, sum %lu\n", mib, sum);
    return 0;
}
