/* overcommit WHAT: a single request for far more memory than the machine has fails with ENOMEM
 * (Linux's default heuristic overcommit), for anonymous mmap, mremap and brk alike; with
 * MAP_NORESERVE the reservation itself succeeds. One request per run (WHAT = mmap, noreserve,
 * mremap or brk), so that the requests cannot influence each other. */
#include "testlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HUGE (1UL << 46)        /* 64 TiB */

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "noreserve") || !strcmp(what, "mmap")) {
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | (what[0] == 'n' ? MAP_NORESERVE : 0);
        void *p = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, flags, -1, 0);
        printf("mmap 64 TiB %s: %s\n", what, p == MAP_FAILED ? ename(errno) : "mapped");
    } else if (!strcmp(what, "mremap")) {
        void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long r = syscall(SYS_mremap, q, 4096, HUGE, MREMAP_MAYMOVE);
        printf("mremap 4 KiB -> 64 TiB: %s\n", r < 0 ? ename(errno) : "remapped");
    } else if (!strcmp(what, "brk")) {
        uintptr_t start = (uintptr_t)syscall(SYS_brk, 0);
        uintptr_t moved = (uintptr_t)syscall(SYS_brk, start + HUGE);
        printf("brk(+64 TiB): break moved by %ld\n", (long)(moved - start));
    } else {
        fprintf(stderr, "usage: overcommit mmap|noreserve|mremap|brk\n");
        return 2;
    }
    return 0;
}
