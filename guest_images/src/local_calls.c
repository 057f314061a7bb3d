/* The system calls `mvemu run --hrt-local` lets the AeroKernel serve itself (subtractive porting,
 * docs/split.md), in the cases where it must give up and forward them: a result buffer not mapped
 * yet, a buffer shared copy-on-write with a child, a CPU-time clock, a timezone, writes to a pipe
 * and to a file dup2'd onto stdout. The output is the same natively, on the ROS and hybridized,
 * with or without --hrt-local. Raw syscall() throughout: libc's vDSO paths never reach the HRT. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int sane(const struct timespec *ts)
{
    return ts->tv_sec > 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000;
}

static int later(const struct timespec *a, const struct timespec *b)
{
    return b->tv_sec > a->tv_sec || (b->tv_sec == a->tv_sec && b->tv_nsec >= a->tv_nsec);
}

static void say(const char *s)
{
    if (syscall(SYS_write, 1, s, strlen(s)) != (long)strlen(s))
        _exit(9);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    long pid = syscall(SYS_getpid), tid = syscall(SYS_gettid);
    printf("getpid == gettid: %d, getpid == getpid(): %d\n", pid == tid, pid == getpid());

    struct timespec a, b;
    long r1 = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &a);
    long r2 = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
    printf("monotonic: %ld %ld, sane %d, never backwards %d\n", r1, r2, sane(&a), later(&a, &b));

    /* a buffer in a page not touched yet: the copy faults, the call is forwarded, then local */
    struct timespec *fresh = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long r3 = syscall(SYS_clock_gettime, CLOCK_REALTIME, fresh);
    long r4 = syscall(SYS_clock_gettime, CLOCK_REALTIME, fresh + 1);
    printf("realtime into a fresh page: %ld %ld, sane %d, never backwards %d\n", r3, r4, sane(fresh),
           later(fresh, fresh + 1));

    /* a buffer shared copy-on-write with a child: CR0.WP makes the copy fault, the ROS breaks it */
    struct timespec *shared = (struct timespec *)((char *)fresh + 4096);
    shared->tv_sec = 1;
    shared->tv_nsec = 0;
    int gate[2];                /* the child looks only after the parent wrote (no timing involved) */
    if (pipe(gate) != 0)
        return 6;
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(gate[1]);
        if (read(gate[0], &c, 1) != 0)
            _exit(7);
        printf("child: its copy still holds %ld.%09ld\n", (long)shared->tv_sec, shared->tv_nsec);
        _exit(0);
    }
    close(gate[0]);
    long r5 = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, shared);
    printf("parent: monotonic into a copy-on-write page: %ld, changed %d\n", r5, shared->tv_sec != 1);
    close(gate[1]);
    int st;
    waitpid(child, &st, 0);

    struct timespec cpu;
    long r6 = syscall(SYS_clock_gettime, CLOCK_PROCESS_CPUTIME_ID, &cpu);
    long r7 = syscall(SYS_clock_gettime, 12345, &cpu);
    printf("cpu time clock: %ld, bad clock: %ld\n", r6, r7);

    struct timeval tv;
    struct timezone tz;
    long r8 = syscall(SYS_gettimeofday, &tv, NULL), r9 = syscall(SYS_gettimeofday, &tv, &tz);
    time_t t1 = 0;
    long t0 = syscall(SYS_time, NULL), t2 = syscall(SYS_time, &t1);
    printf("gettimeofday: %ld %ld; time: agrees %d, close to gettimeofday %d\n", r8, r9,
           t1 == t2 && t2 >= t0, t2 - tv.tv_sec <= 1 && tv.tv_sec - t2 <= 1);

    say("write to stdout\n");
    if (syscall(SYS_write, 2, "write to stderr\n", 16) != 16)
        return 1;
    int p[2];
    char buf[16] = {0};
    if (pipe(p) != 0 || syscall(SYS_write, p[1], "pipe", 4) != 4 || read(p[0], buf, sizeof buf) != 4)
        return 2;
    printf("through a pipe: %s\n", buf);

    /* stdout redirected to a file by the program itself: no longer the console */
    int saved = dup(1), f = open("local_calls.out", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || f < 0 || dup2(f, 1) != 1)
        return 3;
    say("into the file\n");
    if (dup2(saved, 1) != 1)
        return 4;
    memset(buf, 0, sizeof buf);
    if (pread(f, buf, sizeof buf - 1, 0) != 14)
        return 5;
    unlink("local_calls.out");
    printf("the file holds: %s", buf);
    say("stdout again\n");
    return 0;
}
