/* nosys: calls a system call mvemu does not implement (io_uring_setup) twice and a number Linux
 * does not have (1000) once; prints each result as "NAME: ret errno-name". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

int main(void)
{
    for (int i = 0; i < 2; i++) {
        errno = 0;
        long r = syscall(SYS_io_uring_setup, 1, NULL);
        printf("io_uring_setup: %ld %s\n", r, ename(r < 0 ? errno : 0));
    }
    errno = 0;
    long r = syscall(1000, 0, 0, 0);
    printf("syscall 1000: %ld %s\n", r, ename(r < 0 ? errno : 0));
    return 0;
}
