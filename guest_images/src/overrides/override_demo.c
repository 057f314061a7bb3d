/* A legacy program with two hooks that a kernel can do better, for function overrides without
 * recompiling (docs/overrides.md; override_demo.toml is its config):
 *
 *   platform_cr0()           "the machine's CR0, or -1 where it cannot be read" (here: never)
 *   scaled(x, scale, offset) x * scale + offset, printed by main
 *
 * Run natively, or hybridized without the config, it prints "cr0: unavailable" and the values.
 * Hybridized with override_demo.toml and run under mvemu, main runs in the HRT (ring 0), so
 * platform_cr0() is aerokernel_read_cr0 and scaled() goes through the runtime's mv_demo_apply3,
 * which calls the original with offset and scale swapped.
 *
 * usage: override_demo X SCALE OFFSET */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) long platform_cr0(void)
{
    __asm__ volatile("" ::: "memory");      /* a body the compiler does not fold into the caller */
    return -1;
}

__attribute__((noipa)) long scaled(long x, long scale, long offset)
{
    __asm__ volatile("" ::: "memory");
    return x * scale + offset;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s X SCALE OFFSET\n", argv[0]);
        return 2;
    }
    long cr0 = platform_cr0();
    if (cr0 == -1)
        printf("cr0: unavailable\n");
    else
        printf("cr0: PE=%ld WP=%ld PG=%ld\n", cr0 & 1, (cr0 >> 16) & 1, (cr0 >> 31) & 1);
    long x = strtol(argv[1], 0, 0), s = strtol(argv[2], 0, 0), o = strtol(argv[3], 0, 0);
    printf("scaled(%ld, %ld, %ld) = %ld\n", x, s, o, scaled(x, s, o));
    return 0;
}
