/* longpath: a path longer than PATH_MAX (4096 bytes with its NUL) gives ENAMETOOLONG, not EFAULT. */
#include "testlib.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    static char path[9000];
    struct stat st;
    memset(path, 'a', sizeof path - 1);
    CHECK("open 8999-char path", syscall(SYS_open, path, O_RDONLY));
    CHECK("stat 8999-char path", syscall(SYS_stat, path, &st));
    memset(path, 0, sizeof path);
    for (int i = 0; i < 4096; i += 2)
        memcpy(path + i, "./", 2);
    CHECK("stat 4096-char path", syscall(SYS_stat, path, &st));
    path[4094] = 0;
    CHECK("stat 4094-char path", syscall(SYS_stat, path, &st));
    return 0;
}
