/* mremap: growing in place, moving (MREMAP_MAYMOVE, MREMAP_FIXED), shrinking, and the errors; contents
 * must survive every move and grown parts must read zero. Prints no addresses. */
#include "testlib.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096L

static void fill(unsigned char *p, long n, int seed)
{
    for (long i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + seed);
}

static int same(const unsigned char *p, long n, int seed)
{
    for (long i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + seed))
            return 0;
    return 1;
}

static int zero(const unsigned char *p, long n)
{
    for (long i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void *xmremap(void *old, long oldsz, long newsz, int flags, void *fixed)
{
    long r = syscall(SYS_mremap, old, oldsz, newsz, flags, fixed);
    return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

int main(void)
{
    /* A reserved window: 64 pages, so placements inside it are under our control. */
    unsigned char *win = mmap(NULL, 64 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    OK("reserve 64-page window", win != MAP_FAILED);

    unsigned char *a = mmap(win, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    OK("map 2 pages at window start", a == win);
    fill(a, 2 * PG, 1);
    OK("munmap the rest of the window", munmap(win + 2 * PG, 62 * PG) == 0);

    /* grow in place: the pages after it are free */
    unsigned char *b = xmremap(a, 2 * PG, 4 * PG, 0, NULL);
    OK("grow 2 -> 4 pages in place", b == a);
    OK("contents kept", same(b, 2 * PG, 1));
    OK("grown part reads zero", zero(b + 2 * PG, 2 * PG));
    b[4 * PG - 1] = 9;

    /* block growth with a page right after, then grow: must move (or fail without MAYMOVE) */
    unsigned char *guard = mmap(b + 4 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    OK("guard page after the mapping", guard == b + 4 * PG);
    errno = 0;
    OK("grow without MAYMOVE: ENOMEM", xmremap(b, 4 * PG, 8 * PG, 0, NULL) == MAP_FAILED && errno == ENOMEM);
    unsigned char *c = xmremap(b, 4 * PG, 8 * PG, MREMAP_MAYMOVE, NULL);
    OK("grow 4 -> 8 pages with MAYMOVE moves", c != MAP_FAILED && c != b);
    OK("moved contents kept", same(c, 2 * PG, 1) && c[4 * PG - 1] == 9);
    OK("moved grown part reads zero", zero(c + 4 * PG, 4 * PG));
    errno = 0;
    OK("old range is gone (mprotect: ENOMEM)", mprotect(b, PG, PROT_READ) == -1 && errno == ENOMEM);

    /* MREMAP_FIXED to a chosen place (the window start) */
    unsigned char *d = xmremap(c, 8 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, win + 16 * PG);
    OK("MREMAP_FIXED move and shrink to 3 pages", d == win + 16 * PG);
    OK("fixed-moved contents kept", same(d, 2 * PG, 1));

    /* shrink in place */
    unsigned char *e = xmremap(d, 3 * PG, PG, 0, NULL);
    OK("shrink 3 -> 1 page in place", e == d);
    OK("shrunk contents kept", same(e, PG, 1));
    errno = 0;
    OK("shrunk tail is unmapped", mprotect(e + PG, PG, PROT_READ) == -1 && errno == ENOMEM);

    /* errors */
    errno = 0;
    OK("unaligned old address: EINVAL", xmremap(e + 1, PG, 2 * PG, MREMAP_MAYMOVE, NULL) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    OK("new size 0: EINVAL", xmremap(e, PG, 0, MREMAP_MAYMOVE, NULL) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    OK("unknown flag: EINVAL", xmremap(e, PG, 2 * PG, 0x100, NULL) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    OK("FIXED without MAYMOVE: EINVAL", xmremap(e, PG, PG, MREMAP_FIXED, win + 40 * PG) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    OK("unmapped old range: EFAULT", xmremap(win + 50 * PG, PG, 2 * PG, MREMAP_MAYMOVE, NULL) == MAP_FAILED && errno == EFAULT);

    /* a big anonymous block the way realloc grows one */
    long n = 64 * PG;
    unsigned char *big = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(big, n, 3);
    unsigned char *bigger = xmremap(big, n, 4 * n, MREMAP_MAYMOVE, NULL);
    OK("grow 64 -> 256 pages", bigger != MAP_FAILED);
    OK("256-page block keeps contents", same(bigger, n, 3) && zero(bigger + n, 3 * n));
    OK("munmap it", munmap(bigger, 4 * n) == 0);
    OK("munmap guard and rest", munmap(guard, PG) == 0 && munmap(e, PG) == 0);
    return 0;
}
