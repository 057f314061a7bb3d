/* fdio: descriptor semantics beyond filetool: shared offsets after dup, O_APPEND, sendfile, poll on
 * pipes, many directory entries, holes, renameat2 flags, symlink loops, /dev/null and /dev/zero,
 * F_DUPFD and close_range. Run in an empty scratch directory. */
#include "testlib.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    char buf[8192];
    int fd = open("a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK("write a.txt", write(fd, "0123456789", 10));
    int d = dup(fd);
    CHECK("lseek(dup, 2)", lseek(d, 2, SEEK_SET));
    CHECK("offset shared with the original", lseek(fd, 0, SEEK_CUR));
    CHECK("read via original", read(fd, buf, 3));
    printf("%-44s %.3s\n", "read bytes", buf);
    CHECK("dup's offset moved too", lseek(d, 0, SEEK_CUR));
    int o = open("a.txt", O_RDWR);
    CHECK("separate open has its own offset", lseek(o, 0, SEEK_CUR));
    close(o);

    int ap = open("a.txt", O_WRONLY | O_APPEND);
    CHECK("lseek(O_APPEND fd, 0)", lseek(ap, 0, SEEK_SET));
    CHECK("append write", write(ap, "AB", 2));
    CHECK("append lands at end", lseek(ap, 0, SEEK_CUR));
    CHECK("pwrite on O_APPEND (appends)", pwrite(ap, "CD", 2, 0));
    struct stat st;
    fstat(fd, &st);
    CHECK("size after appends", st.st_size);
    close(ap);

    int out = open("copy.txt", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    off_t off = 3;
    CHECK("sendfile 5 bytes from offset 3", sendfile(out, fd, &off, 5));
    CHECK("sendfile updates *offset", off);
    CHECK("sendfile leaves the file offset", lseek(fd, 0, SEEK_CUR));
    close(out);

    CHECK("ftruncate to 100000", ftruncate(fd, 100000));
    CHECK("pread in the hole", pread(fd, buf, 4, 50000));
    OK("hole reads zero", !buf[0] && !buf[1] && !buf[2] && !buf[3]);
    CHECK("pread at EOF", pread(fd, buf, 10, 100000));
    CHECK("pread past EOF", pread(fd, buf, 10, 200000));
    CHECK("ftruncate to 4", ftruncate(fd, 4));
    CHECK("read after truncate (offset 5)", read(fd, buf, 10));

    int p[2];
    CHECK("pipe2 O_CLOEXEC", pipe2(p, O_CLOEXEC));
    CHECK("FD_CLOEXEC set", fcntl(p[0], F_GETFD));
    struct pollfd pf[2] = { { p[0], POLLIN, 0 }, { p[1], POLLOUT, 0 } };
    CHECK("poll: only the write end ready", poll(pf, 2, 0));
    printf("%-44s %#x %#x\n", "revents", pf[0].revents, pf[1].revents);
    write(p[1], "xyz", 3);
    CHECK("poll: both ready", poll(pf, 2, 0));
    printf("%-44s %#x %#x\n", "revents", pf[0].revents, pf[1].revents);
    close(p[1]);
    read(p[0], buf, 3);
    pf[0].revents = 0;
    CHECK("poll after writer closed", poll(pf, 1, 0));
    printf("%-44s %#x\n", "revents (POLLHUP)", pf[0].revents);
    close(p[0]);

    CHECK("mkdir many", mkdir("many", 0755));
    for (int i = 0; i < 300; i++) {
        snprintf(buf, sizeof buf, "many/entry-%03d-%s", i, i % 2 ? "odd-with-a-longer-name" : "even");
        close(open(buf, O_CREAT | O_WRONLY, 0644));
    }
    DIR *dir = opendir("many");
    char *names[400];
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) && n < 400;)
        names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, n, sizeof *names, cmp);
    printf("%-44s %d\n", "readdir entries (with . and ..)", n);
    printf("%-44s %s %s %s %s\n", "first and last", names[0], names[1], names[2], names[n - 1]);

    CHECK("symlink loop1 -> loop2", symlink("loop2", "loop1"));
    CHECK("symlink loop2 -> loop1", symlink("loop1", "loop2"));
    CHECK("open the loop", open("loop1", O_RDONLY));
    CHECK("open O_NOFOLLOW on a symlink", open("loop1", O_RDONLY | O_NOFOLLOW));
    CHECK("open O_DIRECTORY on a file", open("a.txt", O_RDONLY | O_DIRECTORY));
    CHECK("renameat2 RENAME_NOREPLACE onto existing",
          syscall(SYS_renameat2, AT_FDCWD, "a.txt", AT_FDCWD, "copy.txt", 1));
    CHECK("renameat2 RENAME_EXCHANGE", syscall(SYS_renameat2, AT_FDCWD, "a.txt", AT_FDCWD, "copy.txt", 2));
    CHECK("link", link("copy.txt", "hard.txt"));
    stat("hard.txt", &st);
    CHECK("st_nlink after link", st.st_nlink);

    int nul = open("/dev/null", O_RDWR);
    CHECK("write /dev/null", write(nul, buf, 100));
    CHECK("read /dev/null", read(nul, buf, 100));
    int zero = open("/dev/zero", O_RDONLY);
    memset(buf, 1, 64);
    CHECK("read /dev/zero", read(zero, buf, 64));
    OK("zeros", !buf[0] && !buf[63]);

    CHECK("F_DUPFD from 20", fcntl(fd, F_DUPFD, 20));
    CHECK("F_DUPFD_CLOEXEC from 20", fcntl(fd, F_DUPFD_CLOEXEC, 20));
    CHECK("dup2 to 100", dup2(fd, 100));
    CHECK("close_range 20..100", syscall(SYS_close_range, 20, 100, 0));
    CHECK("fd 21 closed", fcntl(21, F_GETFD));
    CHECK("fd 100 closed", fcntl(100, F_GETFD));
    CHECK("fd still open", fcntl(fd, F_GETFD));
    return 0;
}
