/* brk: grow, use, shrink and grow again with the raw system call; a re-grown heap reads zero, and
 * a request below the start of the heap leaves the break alone. Prints offsets, never addresses. */
#include "testlib.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static uintptr_t sbrk_raw(uintptr_t addr)
{
    return (uintptr_t)syscall(SYS_brk, addr);
}

int main(void)
{
    uintptr_t start = sbrk_raw(0);
    OK("brk(0) twice gives the same break", sbrk_raw(0) == start);
    uintptr_t top = sbrk_raw(start + (1 << 20));
    printf("%-44s %ld\n", "grow by 1 MiB: new break - old", (long)(top - start));
    volatile unsigned char *p = (unsigned char *)start;
    p[0] = 1;
    p[(1 << 20) - 1] = 2;
    OK("first and last byte writable", p[0] == 1 && p[(1 << 20) - 1] == 2);
    uintptr_t odd = sbrk_raw(start + 12345);
    printf("%-44s %ld\n", "shrink to +12345: new break - old", (long)(odd - start));
    OK("the page holding the break is still usable", p[12344] == 0 && (p[12344] = 5) == 5);
    errno = 0;
    OK("pages above the break are gone (mprotect: ENOMEM)",
       mprotect((void *)((start + 12345 + 8191) & ~4095UL), 4096, PROT_READ) == -1 && errno == ENOMEM);
    top = sbrk_raw(start + (1 << 20));
    printf("%-44s %ld\n", "grow back by 1 MiB", (long)(top - start));
    OK("re-grown pages read zero", p[(1 << 20) - 1] == 0 && p[500000] == 0);
    uintptr_t below = sbrk_raw(4096);
    printf("%-44s %ld\n", "brk(4096) leaves the break", (long)(below - start));
    OK("shrink back to the start", sbrk_raw(start) == start);
    return 0;
}
