/* filetool DIR: exercises file-system system calls inside DIR (a fresh, empty directory)
 * and prints what it observes. Leaves these entries behind in DIR for a harness to compare:
 *   data.txt (regular), hole.bin (65541 bytes, a hole of zeros), vec.txt (writev output),
 *   renamed.txt (renamed from tmp.txt), link -> data.txt (symlink), sub/ (dir) with
 *   sub/inner.txt, appended.txt (O_APPEND writes).
 * Output contains no paths, times, inode numbers or block counts. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include "common.h"

static int failures;

static void check(const char *what, int ok)
{
    printf("%-44s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok)
        failures++;
}

/* Prints "what: OK" or "what: ENAME" for a call whose result is r (-1 = error). */
static void result(const char *what, long r)
{
    printf("%-44s %s\n", what, r < 0 ? errno_name(errno) : "OK");
}

static void write_file(const char *name, const char *text)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) < 0) {
        printf("cannot write %s: %s\n", name, errno_name(errno));
        exit(1);
    }
}

static long file_size(const char *name)
{
    struct stat st;
    if (stat(name, &st) < 0)
        return -1;
    return (long)st.st_size;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("opendir %s: %s\n", dir, errno_name(errno));
        failures++;
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL && n < 64)
        names[n++] = strdup(e->d_name);
    if (errno)
        printf("readdir: %s\n", errno_name(errno));
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    printf("listing of %s (%d entries):\n", dir, n);
    for (int i = 0; i < n; i++) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        const char *kind = "?";
        long size = -1;
        if (lstat(path, &st) == 0) {
            kind = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                 : S_ISLNK(st.st_mode) ? "symlink" : "other";
            size = S_ISREG(st.st_mode) ? (long)st.st_size : -1;
        }
        if (size >= 0)
            printf("  %-14s %-7s %ld bytes mode %03o\n", names[i], kind, size,
                   (unsigned)(st.st_mode & 0777));
        else
            printf("  %-14s %s\n", names[i], kind);
        free(names[i]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR  (DIR: an empty scratch directory)\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);

    /* getcwd / chdir: after chdir the cwd must be DIR itself. */
    char before[4096], after[4096], real[4096];
    check("getcwd before chdir", getcwd(before, sizeof before) != NULL);
    if (chdir(argv[1]) < 0) {
        printf("chdir DIR: %s\n", errno_name(errno));
        return 1;
    }
    check("getcwd after chdir", getcwd(after, sizeof after) != NULL);
    check("getcwd equals realpath(DIR)",
          chdir(before) == 0 && realpath(argv[1], real) && strcmp(real, after) == 0);
    check("chdir DIR again", chdir(argv[1]) == 0);
    check("chdir(\".\")", chdir(".") == 0);

    /* open / write / read / lseek. */
    write_file("data.txt", "0123456789abcdefghij\n");
    check("stat data.txt size == 21", file_size("data.txt") == 21);
    int fd = open("data.txt", O_RDWR);
    check("open data.txt O_RDWR", fd >= 0);
    char buf[256];
    memset(buf, 0, sizeof buf);
    check("read 5", read(fd, buf, 5) == 5 && memcmp(buf, "01234", 5) == 0);
    check("lseek SEEK_CUR +0 == 5", lseek(fd, 0, SEEK_CUR) == 5);
    check("lseek SEEK_CUR +5 == 10", lseek(fd, 5, SEEK_CUR) == 10);
    check("read after SEEK_CUR", read(fd, buf, 3) == 3 && memcmp(buf, "abc", 3) == 0);
    check("lseek SEEK_END -3 == 18", lseek(fd, -3, SEEK_END) == 18);
    check("read at end-3", read(fd, buf, 10) == 3 && memcmp(buf, "ij\n", 3) == 0);
    check("read at EOF returns 0", read(fd, buf, 10) == 0);
    check("lseek SEEK_SET 0", lseek(fd, 0, SEEK_SET) == 0);
    errno = 0;
    check("lseek to negative offset fails EINVAL", lseek(fd, -1, SEEK_SET) == -1 && errno == EINVAL);

    /* pwrite / pread do not move the file offset. */
    check("lseek SEEK_SET 2", lseek(fd, 2, SEEK_SET) == 2);
    check("pwrite 4 bytes at 10", pwrite(fd, "ABCD", 4, 10) == 4);
    memset(buf, 0, sizeof buf);
    check("pread 6 bytes at 8", pread(fd, buf, 6, 8) == 6 && memcmp(buf, "89ABCD", 6) == 0);
    check("offset unchanged by pread/pwrite", lseek(fd, 0, SEEK_CUR) == 2);

    /* fcntl(F_GETFL): only the portable bits are printed. */
    int fl = fcntl(fd, F_GETFL);
    printf("%-44s acc=%s append=%d nonblock=%d\n", "fcntl F_GETFL data.txt",
           (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" : (fl & O_ACCMODE) == O_WRONLY ? "O_WRONLY"
                                                                               : "O_RDONLY",
           !!(fl & O_APPEND), !!(fl & O_NONBLOCK));
    check("fcntl F_SETFL O_NONBLOCK", fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
    check("fcntl F_GETFL shows O_NONBLOCK", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    check("fcntl F_GETFD == 0", fcntl(fd, F_GETFD) == 0);
    check("fcntl F_SETFD FD_CLOEXEC", fcntl(fd, F_SETFD, FD_CLOEXEC) == 0);
    check("fcntl F_GETFD == FD_CLOEXEC", fcntl(fd, F_GETFD) == FD_CLOEXEC);

    /* ioctl(TIOCGWINSZ) on a regular file. */
    struct winsize ws;
    errno = 0;
    long r = ioctl(fd, TIOCGWINSZ, &ws);
    printf("%-44s %ld %s\n", "ioctl TIOCGWINSZ on regular file", r, errno_name(errno));

    /* dup shares the offset. */
    int fd2 = dup(fd);
    check("dup", fd2 > fd);
    check("lseek via dup moves original", lseek(fd2, 7, SEEK_SET) == 7 && lseek(fd, 0, SEEK_CUR) == 7);
    check("dup2 onto fd 50", dup2(fd, 50) == 50);
    check("close fd 50", close(50) == 0);
    errno = 0;
    check("close fd 50 again fails EBADF", close(50) == -1 && errno == EBADF);
    check("close dup", close(fd2) == 0);

    /* ftruncate / fstat. */
    struct stat st;
    check("ftruncate to 16", ftruncate(fd, 16) == 0);
    check("fstat size == 16", fstat(fd, &st) == 0 && st.st_size == 16 && S_ISREG(st.st_mode));
    check("fstat mode 0644", (st.st_mode & 0777) == 0644);
    check("fsync", fsync(fd) == 0);
    check("close data.txt", close(fd) == 0);

    /* Hole: lseek past the end and write. */
    fd = open("hole.bin", O_RDWR | O_CREAT | O_EXCL, 0600);
    check("open hole.bin O_CREAT|O_EXCL", fd >= 0);
    check("write 'start'", write(fd, "start", 5) == 5);
    check("lseek past end to 65536", lseek(fd, 65536, SEEK_SET) == 65536);
    check("write 'end' after the hole", write(fd, "end\n\n", 5) == 5);
    check("fstat size == 65541", fstat(fd, &st) == 0 && st.st_size == 65541);
    {
        static char hole[65536];
        memset(hole, 0x55, sizeof hole);
        int zeros = pread(fd, hole, 65531, 5) == 65531;
        for (int i = 0; i < 65531 && zeros; i++)
            zeros = hole[i] == 0;
        check("hole reads back as zeros", zeros);
    }
    check("lseek SEEK_END == 65541", lseek(fd, 0, SEEK_END) == 65541);
    close(fd);
    errno = 0;
    check("O_CREAT|O_EXCL on existing fails EEXIST",
          open("hole.bin", O_RDWR | O_CREAT | O_EXCL, 0600) == -1 && errno == EEXIST);

    /* writev / readv. */
    fd = open("vec.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct iovec wv[3] = {
        {"alpha ", 6}, {"beta ", 5}, {"gamma\n", 6},
    };
    check("writev 3 iovecs == 17", writev(fd, wv, 3) == 17);
    char r1[8] = {0}, r2[16] = {0};
    struct iovec rv[2] = {{r1, 8}, {r2, 16}};
    check("lseek 0", lseek(fd, 0, SEEK_SET) == 0);
    check("readv into 8+16 == 17", readv(fd, rv, 2) == 17);
    check("readv contents", memcmp(r1, "alpha be", 8) == 0 && memcmp(r2, "ta gamma\n", 9) == 0);
    close(fd);

    /* O_APPEND always writes at the end. */
    write_file("appended.txt", "one\n");
    fd = open("appended.txt", O_WRONLY | O_APPEND);
    check("lseek 0 on O_APPEND fd", lseek(fd, 0, SEEK_SET) == 0);
    check("write two", write(fd, "two\n", 4) == 4);
    check("write three", write(fd, "three\n", 6) == 6);
    fl = fcntl(fd, F_GETFL);
    printf("%-44s acc=%s append=%d\n", "fcntl F_GETFL appended.txt",
           (fl & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : "other", !!(fl & O_APPEND));
    close(fd);
    fd = open("appended.txt", O_RDONLY);
    memset(buf, 0, sizeof buf);
    check("appended contents", read(fd, buf, sizeof buf) == 14 && strcmp(buf, "one\ntwo\nthree\n") == 0);
    errno = 0;
    check("write to O_RDONLY fd fails EBADF", write(fd, "x", 1) == -1 && errno == EBADF);
    close(fd);

    /* mkdir / rename / unlink / rmdir. */
    check("mkdir sub", mkdir("sub", 0755) == 0);
    errno = 0;
    check("mkdir sub again fails EEXIST", mkdir("sub", 0755) == -1 && errno == EEXIST);
    write_file("sub/inner.txt", "inside\n");
    write_file("tmp.txt", "to be renamed\n");
    check("rename tmp.txt -> renamed.txt", rename("tmp.txt", "renamed.txt") == 0);
    errno = 0;
    check("stat tmp.txt after rename: ENOENT", file_size("tmp.txt") == -1 && errno == ENOENT);
    check("stat renamed.txt size == 14", file_size("renamed.txt") == 14);
    write_file("gone.txt", "x");
    check("unlink gone.txt", unlink("gone.txt") == 0);
    errno = 0;
    check("unlink gone.txt again: ENOENT", unlink("gone.txt") == -1 && errno == ENOENT);
    errno = 0;
    check("rmdir non-empty sub: ENOTEMPTY", rmdir("sub") == -1 && errno == ENOTEMPTY);
    check("mkdir + rmdir empty", mkdir("empty", 0700) == 0 && rmdir("empty") == 0);
    errno = 0;
    check("stat dir is S_ISDIR", stat("sub", &st) == 0 && S_ISDIR(st.st_mode));
    errno = 0;
    check("open dir for writing: EISDIR", open("sub", O_WRONLY) == -1 && errno == EISDIR);
    errno = 0;
    check("open file/child: ENOTDIR", open("data.txt/x", O_RDONLY) == -1 && errno == ENOTDIR);

    /* access(). */
    result("access data.txt F_OK", access("data.txt", F_OK));
    result("access data.txt R_OK|W_OK", access("data.txt", R_OK | W_OK));
    result("access data.txt X_OK (mode 0644)", access("data.txt", X_OK));
    result("access sub X_OK", access("sub", X_OK));
    result("access missing F_OK", access("missing", F_OK));

    /* symlink / readlink / lstat. */
    check("symlink link -> data.txt", symlink("data.txt", "link") == 0);
    ssize_t n = readlink("link", buf, sizeof buf - 1);
    if (n >= 0)
        buf[n] = '\0';
    printf("%-44s %zd \"%s\"\n", "readlink link", n, n >= 0 ? buf : "");
    check("lstat link is S_ISLNK", lstat("link", &st) == 0 && S_ISLNK(st.st_mode));
    check("stat via link size == 16", file_size("link") == 16);
    errno = 0;
    check("readlink on regular file: EINVAL", readlink("data.txt", buf, sizeof buf) == -1 && errno == EINVAL);

    /* A missing file: strerror text (ENOENT reads the same under glibc and musl). */
    errno = 0;
    fd = open("does-not-exist.txt", O_RDONLY);
    printf("%-44s %d %s: %s\n", "open does-not-exist.txt", fd, errno_name(errno), strerror(errno));

    /* Sorted listings; "." and ".." included. */
    list_dir(".");
    list_dir("sub");

    printf("filetool: %s (%d failures)\n", failures ? "FAILED" : "all ok", failures);
    return failures ? 1 : 0;
}
