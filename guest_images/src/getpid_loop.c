/* getpid_loop [N]: micro-benchmark of the system-call round trip: N raw syscall(SYS_getpid)
 * calls (no libc caching), then prints N. Default N 1000. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
    long n = arg_long(argc, argv, 1, 1000);
    long first = syscall(SYS_getpid), bad = 0;
    for (long i = 0; i < n; i++)
        bad += syscall(SYS_getpid) != first;
    if (bad || first <= 0) {
        printf("getpid_loop: getpid changed or failed\n");
        return 1;
    }
    printf("%ld\n", n);
    return 0;
}
