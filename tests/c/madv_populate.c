/* madv_populate: madvise(MADV_POPULATE_READ / MADV_POPULATE_WRITE) (Linux 5.14) faults pages in as a
 * read or write access would, without changing them: data survives, a page first read (the zero
 * page) becomes private on a populating write, a forked child's populating write breaks
 * copy-on-write without the parent seeing it; and the errors (read-only or PROT_NONE mappings,
 * holes, unaligned addresses). The Multiverse partner replicates an HRT write fault this way. */
#include "testlib.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#define PG 4096L

int main(void)
{
    unsigned char *rw = mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *ro = mmap(0, 2 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *none = mmap(0, 2 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rw == MAP_FAILED || ro == MAP_FAILED || none == MAP_FAILED)
        return 1;

    CHECK("populate write, untouched pages", madvise(rw, 2 * PG, MADV_POPULATE_WRITE));
    OK("  they read zero", rw[0] == 0 && rw[PG + 5] == 0);
    rw[2 * PG] = 'x';
    CHECK("populate write, a written page", madvise(rw + 2 * PG, PG, MADV_POPULATE_WRITE));
    OK("  its data survives", rw[2 * PG] == 'x');
    volatile unsigned char sink = rw[3 * PG];          /* read first: the shared zero page */
    (void)sink;
    CHECK("populate write, a page read before", madvise(rw + 3 * PG, PG, MADV_POPULATE_WRITE));
    rw[3 * PG] = 'y';
    OK("  private afterwards", rw[3 * PG] == 'y' && ro[0] == 0);
    CHECK("populate read", madvise(rw, 4 * PG, MADV_POPULATE_READ));
    CHECK("populate read, read-only mapping", madvise(ro, 2 * PG, MADV_POPULATE_READ));
    CHECK("populate write, read-only mapping", madvise(ro, 2 * PG, MADV_POPULATE_WRITE));
    CHECK("populate read, PROT_NONE", madvise(none, PG, MADV_POPULATE_READ));
    CHECK("populate write, PROT_NONE", madvise(none, PG, MADV_POPULATE_WRITE));
    CHECK("populate write, unaligned", madvise(rw + 1, 10, MADV_POPULATE_WRITE));
    CHECK("populate write, zero length", madvise(rw, 0, MADV_POPULATE_WRITE));
    munmap(rw + 3 * PG, PG);
    CHECK("populate write over a hole", madvise(rw + 2 * PG, 2 * PG, MADV_POPULATE_WRITE));

    rw[0] = 'p';
    pid_t pid = fork();
    if (pid == 0) {
        long r = madvise(rw, PG, MADV_POPULATE_WRITE);  /* breaks copy-on-write in the child */
        rw[1] = 'c';
        _exit(r == 0 && rw[0] == 'p' ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    OK("child: populate write after fork", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    OK("parent unchanged", rw[0] == 'p' && rw[1] == 0);
    return 0;
}
