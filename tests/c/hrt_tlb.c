/* Mapping changes the HRT must see at once (docs/split.md "TLB coherence"). Hybridized, main runs
 * in the HRT with the lower half merged; every change here is made by the ROS on the partner's
 * behalf, and an HRT vCPU that kept a stale translation would read an old frame, write through a
 * read-only mapping, or fault forever on a new top-level entry. Natively, every line is "ok". */
#include "testlib.h"

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096L

static sigjmp_buf jb;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

int main(void)
{
    /* munmap then mmap again at the same address: a fresh zero page, not the old frame */
    int fresh = 1;
    for (int i = 0; i < 300; i++) {
        volatile unsigned char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return 1;
        fresh &= p[0] == 0 && p[PG - 1] == 0;
        p[0] = p[PG - 1] = (unsigned char)(i + 1);
        munmap((void *)p, PG);
    }
    OK("300 mmap/write/munmap rounds, always fresh", fresh);

    /* mremap moves the data; the old address no longer holds it */
    unsigned char *a = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *hole = mmap(NULL, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    a[0] = 'm';
    a[PG] = 'r';
    unsigned char *b = mremap(a, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
    OK("mremap moved the data", b == hole && b[0] == 'm' && b[PG] == 'r');
    unsigned char *again = mmap(a, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    OK("the old address is fresh memory now", again == a && a[0] == 0);

    /* brk shrunk and grown again: zero pages, not what was there */
    char *top = (char *)syscall(SYS_brk, 0);       /* raw: musl's sbrk only answers sbrk(0) */
    int grown = syscall(SYS_brk, top + 2 * PG) == (long)(top + 2 * PG);
    top[0] = 'b';
    top[PG] = 'k';
    syscall(SYS_brk, top);
    grown &= syscall(SYS_brk, top + 2 * PG) == (long)(top + 2 * PG);
    OK("brk shrunk and grown: zero again", grown && top[0] == 0 && top[PG] == 0);

    /* a mapping under a top-level page-table entry made after the merge: the HRT's copy of the
     * PML4 lacks it until a re-merge */
    volatile unsigned char *far = mmap((void *)0x300000000000UL, PG, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (far != MAP_FAILED) {
        far[7] = 42;
        OK("a new top-level entry is reached", far[7] == 42);
    } else {
        printf("%-44s %s\n", "a new top-level entry is reached", ename(errno));
    }
    /* mprotect(PROT_READ): the next write faults (SIGSEGV), even from ring 0. Last: the handler runs
     * on the partner in the ROS, and its siglongjmp carries main on there, out of the HRT. */
    volatile int *q = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *q = 1;
    mprotect((void *)q, PG, PROT_READ);
    signal(SIGSEGV, on_segv);
    int faulted = 0;
    if (sigsetjmp(jb, 1) == 0)
        *q = 2;
    else
        faulted = 1;
    signal(SIGSEGV, SIG_DFL);
    OK("write after mprotect(PROT_READ) faults", faulted && *q == 1);

    return 0;
}
