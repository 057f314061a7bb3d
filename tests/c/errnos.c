/* errnos: error returns of file, descriptor, memory and process system calls, called raw through
 * syscall(2) so that no libc wrapper checks arguments first. Run in an empty scratch directory. */
#include "testlib.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)16)                 /* an address that is never mapped */

int main(void)
{
    char buf[256];
    struct stat st;
    int fd = open("file.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK("create file.txt", fd >= 0 ? 3 : -1);
    CHECK("write file.txt", write(fd, "hello world\n", 12));
    CHECK("mkdir dir", mkdir("dir", 0755));
    CHECK("create dir/inner", close(open("dir/inner", O_CREAT | O_WRONLY, 0600)));
    int p[2];
    CHECK("pipe", pipe(p));

    /* EBADF */
    CHECK("read(-1)", syscall(SYS_read, -1, buf, 1));
    CHECK("write(99)", syscall(SYS_write, 99, "x", 1));
    CHECK("close(1234)", syscall(SYS_close, 1234));
    CHECK("fstat(-1)", syscall(SYS_fstat, -1, &st));
    CHECK("lseek(77)", syscall(SYS_lseek, 77, 0, SEEK_SET));
    CHECK("dup(-5)", syscall(SYS_dup, -5));
    CHECK("dup2(55, 3)", syscall(SYS_dup2, 55, 10));
    CHECK("fcntl(88, F_GETFL)", syscall(SYS_fcntl, 88, F_GETFL));
    CHECK("ioctl(66, TCGETS)", syscall(SYS_ioctl, 66, TCGETS, buf));
    CHECK("mmap(fd 99)", (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, 99, 0) < 0 ? -1 : 0);
    CHECK("read from O_WRONLY fd", ({ int w = open("file.txt", O_WRONLY); long r = syscall(SYS_read, w, buf, 1);
                                      int e = errno; close(w); errno = e; r; }));
    CHECK("write to O_RDONLY fd", ({ int o = open("file.txt", O_RDONLY); long r = syscall(SYS_write, o, "x", 1);
                                     int e = errno; close(o); errno = e; r; }));

    /* ENOENT, ENOTDIR, EISDIR, EEXIST, ENOTEMPTY, ENAMETOOLONG */
    CHECK("open missing", syscall(SYS_open, "missing.txt", O_RDONLY));
    CHECK("openat missing", syscall(SYS_openat, AT_FDCWD, "missing/x", O_RDONLY));
    CHECK("stat empty path", syscall(SYS_stat, "", &st));
    CHECK("unlink missing", syscall(SYS_unlink, "missing.txt"));
    CHECK("chdir missing", syscall(SYS_chdir, "nowhere"));
    CHECK("open file.txt/x", syscall(SYS_open, "file.txt/x", O_RDONLY));
    CHECK("open dir O_WRONLY", syscall(SYS_open, "dir", O_WRONLY));
    CHECK("read from a directory", ({ int d = open("dir", O_RDONLY); long r = syscall(SYS_read, d, buf, 10);
                                      int e = errno; close(d); errno = e; r; }));
    CHECK("mkdir existing", syscall(SYS_mkdir, "dir", 0755));
    CHECK("open O_CREAT|O_EXCL existing", syscall(SYS_open, "file.txt", O_CREAT | O_EXCL | O_WRONLY, 0644));
    CHECK("rmdir non-empty", syscall(SYS_rmdir, "dir"));
    CHECK("rmdir a file", syscall(SYS_rmdir, "file.txt"));
    CHECK("unlink a directory", syscall(SYS_unlink, "dir"));
    char *longname = malloc(5000);
    memset(longname, 'b', 300);
    longname[300] = 0;
    CHECK("open 300-char name", syscall(SYS_open, longname, O_RDONLY));
    for (int i = 0; i < 4000; i += 2)
        memcpy(longname + i, "d/", 2);
    memcpy(longname + 4000, "file", 5);
    CHECK("open 4004-char path", syscall(SYS_open, longname, O_RDONLY));

    /* EFAULT: bad pointers */
    CHECK("write(1, bad)", syscall(SYS_write, 1, BAD, 10));
    CHECK("read(file, bad)", ({ int o = open("file.txt", O_RDONLY); long r = syscall(SYS_read, o, BAD, 10);
                                int e = errno; close(o); errno = e; r; }));
    CHECK("open(bad path)", syscall(SYS_open, BAD, O_RDONLY));
    CHECK("stat(path, bad)", syscall(SYS_stat, "file.txt", BAD));
    CHECK("fstat(0, bad)", syscall(SYS_fstat, fd, BAD));
    CHECK("uname(bad)", syscall(SYS_uname, BAD));
    CHECK("getcwd(bad, 100)", syscall(SYS_getcwd, BAD, 100));
    CHECK("clock_gettime(bad)", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, BAD));
    CHECK("pipe(bad)", syscall(SYS_pipe, BAD));
    CHECK("writev(bad iov)", syscall(SYS_writev, 1, BAD, 1));
    struct iovec iov = { BAD, 5 };
    CHECK("writev(iov with bad base)", syscall(SYS_writev, 1, &iov, 1));
    CHECK("readlink(bad path)", syscall(SYS_readlink, BAD, buf, sizeof buf));

    /* EINVAL */
    CHECK("lseek whence 99", syscall(SYS_lseek, fd, 0, 99));
    CHECK("lseek to -1", syscall(SYS_lseek, fd, -1L, SEEK_SET));
    CHECK("mmap length 0", (long)syscall(SYS_mmap, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) < 0 ? -1 : 0);
    CHECK("mmap offset 100", (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, fd, 100) < 0 ? -1 : 0);
    CHECK("mmap no MAP_PRIVATE/SHARED", (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_ANONYMOUS, -1, 0) < 0 ? -1 : 0);
    CHECK("munmap unaligned", syscall(SYS_munmap, 0x10001, 4096));
    CHECK("munmap length 0", syscall(SYS_munmap, 0x100000, 0));
    CHECK("mprotect unaligned", syscall(SYS_mprotect, 0x10001, 4096, PROT_READ));
    CHECK("readv iovcnt -1", syscall(SYS_readv, fd, &iov, -1));
    CHECK("fcntl bad cmd", syscall(SYS_fcntl, fd, 12345));
    CHECK("clock_gettime bad clock", syscall(SYS_clock_gettime, 12345, buf));
    CHECK("kill bad signal", syscall(SYS_kill, getpid(), 1000));
    CHECK("rt_sigaction SIGKILL", ({ struct sigaction sa = { 0 }; sa.sa_handler = SIG_IGN;
                                     sigaction(SIGKILL, &sa, NULL); }));
    CHECK("dup3 same fd", syscall(SYS_dup3, fd, fd, 0));

    /* ENOMEM on unmapped ranges */
    CHECK("mprotect unmapped", syscall(SYS_mprotect, 0x10000000, 4096, PROT_READ));
    CHECK("madvise unmapped", syscall(SYS_madvise, 0x10000000, 4096, MADV_DONTNEED));
    CHECK("munmap unmapped (ok)", syscall(SYS_munmap, 0x10000000, 4096));

    /* ENOTTY, ESPIPE */
    CHECK("ioctl(file, TCGETS)", syscall(SYS_ioctl, fd, TCGETS, buf));
    CHECK("ioctl(file, TIOCGWINSZ)", syscall(SYS_ioctl, fd, TIOCGWINSZ, buf));
    CHECK("ioctl(pipe, TCGETS)", syscall(SYS_ioctl, p[0], TCGETS, buf));
    CHECK("lseek(pipe)", syscall(SYS_lseek, p[0], 0, SEEK_CUR));
    CHECK("pread(pipe)", syscall(SYS_pread64, p[0], buf, 1, 0));
    CHECK("pwrite(pipe)", syscall(SYS_pwrite64, p[1], "x", 1, 0));
    CHECK("mmap(pipe)", (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, p[0], 0) < 0 ? -1 : 0);
    CHECK("mmap(dir)", ({ int d = open("dir", O_RDONLY);
                          long r = (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, d, 0) < 0 ? -1 : 0;
                          int e = errno; close(d); errno = e; r; }));

    /* EAGAIN, EPIPE */
    CHECK("fcntl(pipe, O_NONBLOCK)", syscall(SYS_fcntl, p[0], F_SETFL, O_NONBLOCK));
    CHECK("read empty non-blocking pipe", syscall(SYS_read, p[0], buf, 1));
    CHECK("write pipe", syscall(SYS_write, p[1], "abc", 3));
    CHECK("read pipe", syscall(SYS_read, p[0], buf, sizeof buf));
    CHECK("close write end", syscall(SYS_close, p[1]));
    CHECK("read pipe at EOF", syscall(SYS_read, p[0], buf, sizeof buf));
    signal(SIGPIPE, SIG_IGN);
    CHECK("pipe again", pipe(p));
    CHECK("close read end", syscall(SYS_close, p[0]));
    CHECK("write without reader (SIGPIPE ignored)", syscall(SYS_write, p[1], "x", 1));

    /* ESRCH */
    CHECK("kill(pid 0x3ffffff, 0)", syscall(SYS_kill, 0x3ffffff, 0));
    CHECK("kill(self, 0)", syscall(SYS_kill, getpid(), 0));

    close(fd);
    unlink("dir/inner");
    return 0;
}
