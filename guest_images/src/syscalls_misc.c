/* syscalls_misc: assorted process and time system calls. Prints only deterministic facts:
 * uname's sysname and machine, and ok/FAIL for: getpid > 0, gettid == getpid (single thread),
 * uid/gid == euid/egid, getppid > 0, CLOCK_MONOTONIC non-decreasing, CLOCK_REALTIME /
 * gettimeofday / time() after 2020 and mutually consistent, nanosleep(1 ms) sleeps >= 1 ms,
 * getrandom fills 16 bytes, sched_getaffinity count >= 1, prlimit(RLIMIT_STACK) readable,
 * umask round trip, clock_getres, sysconf page size. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

#define Y2020 1577836800L

static int failures;

static void check(const char *what, int ok)
{
    printf("%-48s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok)
        failures++;
}

static long long ns(const struct timespec *t)
{
    return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct utsname u;
    if (uname(&u) == 0)
        printf("uname sysname=%s machine=%s\n", u.sysname, u.machine);
    else
        check("uname", 0);

    pid_t pid = getpid();
    check("getpid > 0", pid > 0);
    check("gettid == getpid", syscall(SYS_gettid) == pid);
    check("getppid > 0", getppid() > 0);
    check("getuid == geteuid", getuid() == geteuid());
    check("getgid == getegid", getgid() == getegid());
    check("getpgid(0) > 0", getpgid(0) > 0);

    struct timespec m0, m1, r, res;
    int mono_ok = clock_gettime(CLOCK_MONOTONIC, &m0) == 0;
    for (int i = 0; i < 1000 && mono_ok; i++) {
        mono_ok = clock_gettime(CLOCK_MONOTONIC, &m1) == 0 && ns(&m1) >= ns(&m0);
        m0 = m1;
    }
    check("clock_gettime MONOTONIC non-decreasing x1000", mono_ok);
    check("clock_getres MONOTONIC <= 1 ms",
          clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000);
    check("clock_gettime REALTIME > 2020", clock_gettime(CLOCK_REALTIME, &r) == 0 && r.tv_sec > Y2020);
    struct timeval tv;
    check("gettimeofday > 2020 and usec < 1e6",
          gettimeofday(&tv, NULL) == 0 && tv.tv_sec > Y2020 && tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    time_t t = time(NULL);
    /* time() may read a coarse clock, so it can lag clock_gettime by up to a tick. */
    check("time() > 2020 and within 5 s of REALTIME", t > Y2020 && t - r.tv_sec <= 5 && r.tv_sec - t <= 5);
    struct timespec c;
    check("clock_gettime PROCESS_CPUTIME_ID", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c) == 0);

    struct timespec req = {0, 1000000}, a0, a1;
    clock_gettime(CLOCK_MONOTONIC, &a0);
    int ns_rc = nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &a1);
    check("nanosleep 1 ms returns 0", ns_rc == 0);
    check("nanosleep slept >= 1 ms", ns(&a1) - ns(&a0) >= 1000000);
    errno = 0;
    struct timespec bad = {0, 1000000000};
    check("nanosleep tv_nsec=1e9: EINVAL", nanosleep(&bad, NULL) == -1 && errno == EINVAL);

    unsigned char rnd[16];
    memset(rnd, 0, sizeof rnd);
    ssize_t got = getrandom(rnd, sizeof rnd, 0);
    int nonzero = 0;
    for (int i = 0; i < 16; i++)
        nonzero |= rnd[i];
    check("getrandom 16 bytes", got == 16 && nonzero);

    cpu_set_t set;
    CPU_ZERO(&set);
    check("sched_getaffinity count >= 1", sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1);
    check("sched_yield", sched_yield() == 0);

    struct rlimit rl;
    check("prlimit RLIMIT_STACK readable",
          prlimit(0, RLIMIT_STACK, NULL, &rl) == 0 &&
          (rl.rlim_max == RLIM_INFINITY || rl.rlim_cur <= rl.rlim_max));
    check("getrlimit RLIMIT_NOFILE cur >= 3", getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 3);

    mode_t old = umask(027);
    check("umask round trip", umask(old) == 027);
    check("sysconf(_SC_PAGESIZE) == 4096", sysconf(_SC_PAGESIZE) == 4096);

    errno = 0;
    check("unknown syscall 1000: ENOSYS", syscall(1000) == -1 && errno == ENOSYS);

    printf("syscalls_misc: %s (%d failures)\n", failures ? "FAILED" : "all ok", failures);
    return failures ? 1 : 0;
}
