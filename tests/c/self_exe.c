/* self_exe: /proc/self/exe is the running program for every kind of access, not only readlink. */
#include "testlib.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    (void)argc;
    struct stat a, b, c;
    OK("stat(/proc/self/exe) is argv[0]", stat("/proc/self/exe", &a) == 0 && stat(argv[0], &b) == 0 &&
                                          a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size);
    int fd = open("/proc/self/exe", O_RDONLY);
    OK("open(/proc/self/exe) is argv[0]", fd >= 0 && fstat(fd, &c) == 0 && c.st_ino == b.st_ino);
    unsigned char hdr[20] = { 0 };
    OK("read(/proc/self/exe): an x86-64 ELF", fd >= 0 && pread(fd, hdr, sizeof hdr, 0) == sizeof hdr &&
                                              hdr[0] == 0x7f && hdr[4] == 2 && hdr[18] == 62);
    OK("access(/proc/self/exe, X_OK)", access("/proc/self/exe", X_OK) == 0);
    return 0;
}
