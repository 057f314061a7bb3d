/* mmap_file [DIR]: memory-mapping system calls. Creates a scratch file (mkstemp in DIR, else
 * $TMPDIR, else /tmp; removed again at the end) and checks:
 *   MAP_PRIVATE file mapping reads the file; a private write does not reach the file;
 *   MAP_SHARED file mapping: a write + msync reaches the file, a pwrite shows in the mapping;
 *   a mapping at a file offset; mprotect RW -> R -> RW on anonymous memory;
 *   mremap grow (MREMAP_MAYMOVE) keeps contents and zero-fills, mremap shrink;
 *   madvise(MADV_DONTNEED) on private anonymous memory reads back zeros;
 *   munmap of a middle page splits a mapping; MAP_FIXED over an existing mapping;
 *   last: a write to a PROT_READ page raises SIGSEGV, caught with a handler (siglongjmp).
 * Prints "ok"/"FAIL" per check, no addresses. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

static int failures;
static long pg;

static void check(const char *what, int ok)
{
    printf("%-52s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok)
        failures++;
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static sigjmp_buf jb;
static volatile sig_atomic_t got_sig, got_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    siglongjmp(jb, 1);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pg = sysconf(_SC_PAGESIZE);
    printf("page size %ld\n", pg);

    const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/mmap_file.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        printf("mkstemp in DIR: %s\n", errno_name(errno));
        return 1;
    }

    /* A 3-page file: page i filled with 'A'+i. */
    size_t flen = 3 * pg;
    unsigned char *content = malloc(flen);
    for (size_t i = 0; i < flen; i++)
        content[i] = (unsigned char)('A' + i / pg);
    check("write 3-page file", write(fd, content, flen) == (ssize_t)flen);

    /* MAP_PRIVATE. */
    unsigned char *priv = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check("mmap MAP_PRIVATE file", priv != MAP_FAILED);
    check("private mapping matches file", memcmp(priv, content, flen) == 0);
    priv[5] = 'x';
    unsigned char c = 0;
    check("private write not visible in file", pread(fd, &c, 1, 5) == 1 && c == 'A');
    check("private write visible in mapping", priv[5] == 'x');
    check("munmap private", munmap(priv, flen) == 0);

    /* Mapping at an offset, read-only. */
    unsigned char *off = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 2 * pg);
    check("mmap file offset 2 pages, PROT_READ", off != MAP_FAILED && all_bytes(off, pg, 'C'));
    munmap(off, pg);
    errno = 0;
    /* Raw syscalls for the error cases: musl's wrappers check or round in user space. */
    check("mmap unaligned offset: EINVAL",
          syscall(SYS_mmap, 0L, pg, PROT_READ, MAP_PRIVATE, fd, 100L) == -1 && errno == EINVAL);

    /* MAP_SHARED. */
    unsigned char *sh = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check("mmap MAP_SHARED file", sh != MAP_FAILED);
    memcpy(sh + pg + 10, "shared!", 7);
    check("msync MS_SYNC", msync(sh, flen, MS_SYNC) == 0);
    char tmp[8] = {0};
    check("shared write visible via pread", pread(fd, tmp, 7, pg + 10) == 7 && memcmp(tmp, "shared!", 7) == 0);
    check("pwrite visible in shared mapping", pwrite(fd, "PW", 2, 2 * pg) == 2 && memcmp(sh + 2 * pg, "PW", 2) == 0);
    check("munmap shared", munmap(sh, flen) == 0);

    /* Read past EOF within the last page is zero. */
    check("ftruncate file to 1.5 pages", ftruncate(fd, pg + pg / 2) == 0);
    unsigned char *tail = mmap(NULL, 2 * pg, PROT_READ, MAP_PRIVATE, fd, 0);
    check("mmap 2 pages of 1.5-page file", tail != MAP_FAILED);
    check("bytes after EOF in last page are zero", all_bytes(tail + pg + pg / 2, pg / 2, 0));
    munmap(tail, 2 * pg);

    /* mprotect on anonymous memory. */
    unsigned char *a = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap anonymous 4 pages", a != MAP_FAILED);
    check("anonymous memory is zero", all_bytes(a, 4 * pg, 0));
    memset(a, 0x11, 4 * pg);
    check("mprotect PROT_READ", mprotect(a, 4 * pg, PROT_READ) == 0);
    check("read after PROT_READ", all_bytes(a, 4 * pg, 0x11));
    check("mprotect PROT_READ|PROT_WRITE", mprotect(a, 4 * pg, PROT_READ | PROT_WRITE) == 0);
    a[4 * pg - 1] = 0x22;
    check("write after re-enable", a[4 * pg - 1] == 0x22);
    errno = 0;
    check("mprotect unaligned: EINVAL", syscall(SYS_mprotect, a + 1, pg, PROT_READ) == -1 && errno == EINVAL);

    /* munmap a middle page, MAP_FIXED over the hole. */
    check("munmap middle page", munmap(a + pg, pg) == 0);
    unsigned char *fx = mmap(a + pg, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    check("MAP_FIXED into the hole", fx == a + pg && all_bytes(fx, pg, 0));
    check("neighbours intact", all_bytes(a, pg, 0x11) && a[2 * pg] == 0x11);

    /* madvise(MADV_DONTNEED) zero-fills private anonymous pages. */
    check("madvise MADV_DONTNEED page 2", madvise(a + 2 * pg, pg, MADV_DONTNEED) == 0);
    check("page 2 reads zero", all_bytes(a + 2 * pg, pg, 0));
    check("page 0 untouched", all_bytes(a, pg, 0x11));
    check("munmap 4 pages", munmap(a, 4 * pg) == 0);

    /* mremap grow and shrink. */
    unsigned char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (long i = 0; i < 2 * pg; i++)
        m[i] = (unsigned char)(i * 7);
    unsigned char *g = mremap(m, 2 * pg, 64 * pg, MREMAP_MAYMOVE);
    check("mremap grow 2 -> 64 pages", g != MAP_FAILED);
    int same = 1;
    for (long i = 0; i < 2 * pg; i++)
        same &= g[i] == (unsigned char)(i * 7);
    check("grown mapping keeps contents", same);
    check("grown part is zero", all_bytes(g + 2 * pg, 62 * pg, 0));
    g[64 * pg - 1] = 1;
    unsigned char *s = mremap(g, 64 * pg, pg, 0);
    check("mremap shrink 64 -> 1 page in place", s == g && s[100] == (unsigned char)(700));
    check("munmap shrunk mapping", munmap(s, pg) == 0);

    close(fd);
    check("unlink scratch file", unlink(path) == 0);

    /* A write to a read-only page: SIGSEGV with SEGV_ACCERR, caught. */
    unsigned char *ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile unsigned char *)ro = 1;
        check("write to PROT_READ page faults", 0);
    } else {
        check("write to PROT_READ page raises SIGSEGV", got_sig == SIGSEGV);
        check("si_code == SEGV_ACCERR", got_code == SEGV_ACCERR);
    }
    munmap(ro, pg);

    printf("mmap_file: %s (%d failures)\n", failures ? "FAILED" : "all ok", failures);
    return failures ? 1 : 0;
}
