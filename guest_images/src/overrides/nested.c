/* nested [THREADS] [CALLS]: nested HRT threads (paper III-D) with the accelerator SDK.
 *
 * Hybridized, main runs in the HRT and starts THREADS (default 4) nested threads with
 * hrt_thread_create: they run in ring 0 in main's execution group, so main's partner serves all
 * their system calls and page faults, one event at a time. Each thread makes CALLS (default 100)
 * system calls, touches 16 fresh pages of its own, sums its part of a series and returns the sum;
 * main joins them with hrt_thread_join and prints what each saw. Natively (and anywhere outside
 * the HRT) hrt_thread_create says ENOSYS and main runs each function itself, in order: every
 * line about a thread is then the same, because a nested thread is in main's process AND answers
 * gettid with main's partner's id, exactly as main's own calls do. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "hrt.h"

#define MAX_THREADS 16
#define PAGES 16

struct work {
    long index, calls;
    long pid, tid, ppid_ok, pages_ok, in_hrt;
    long sum;
};

static long main_pid, main_tid, main_ppid;

static void *worker(void *arg)
{
    struct work *w = arg;
    w->in_hrt = hrt_in_hrt();
    w->pid = getpid();
    w->tid = syscall(SYS_gettid);
    for (long i = 0; i < w->calls; i++)
        w->ppid_ok += getppid() == main_ppid;
    char *pages = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages != MAP_FAILED) {
        for (int p = 0; p < PAGES; p++)
            pages[p * 4096 + (int)w->index] = (char)(p + 1);     /* page faults, forwarded */
        for (int p = 0; p < PAGES; p++)
            w->pages_ok += pages[p * 4096 + (int)w->index] == (char)(p + 1);
        munmap(pages, PAGES * 4096);
    }
    for (long k = w->index; k < 2000000; k += 7)
        w->sum += k % 1000;
    return (void *)(w->sum * 2);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    long calls = argc > 2 ? atol(argv[2]) : 100;
    if (n < 1 || n > MAX_THREADS)
        return 2;
    main_pid = getpid();
    main_tid = syscall(SYS_gettid);
    main_ppid = getppid();
    struct work w[MAX_THREADS] = {{0}};
    long ids[MAX_THREADS];
    int nested = 1;
    for (int i = 0; i < n; i++) {
        w[i].index = i;
        w[i].calls = calls;
    }
    for (int i = 0; i < n; i++) {
        ids[i] = hrt_thread_create(worker, &w[i]);
        if (ids[i] == -HRT_ENOSYS) {
            nested = 0;
            break;
        }
        if (ids[i] <= 0) {
            printf("hrt_thread_create: %ld\n", ids[i]);
            return 1;
        }
    }
    if (nested) {
        int distinct = 1;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                distinct &= ids[i] != ids[j] && ids[i] != hrt_thread_id();
        printf("nested HRT threads: %d, AeroKernel ids distinct from each other and main's: %s\n", n,
               distinct ? "yes" : "no");
    } else {
        printf("nested HRT threads: unavailable (ENOSYS), each function runs in main\n");
    }
    for (int i = 0; i < n; i++) {
        void *result = NULL;
        if (nested) {
            long r = hrt_thread_join(ids[i], &result);
            if (r != 0) {
                printf("hrt_thread_join: %ld\n", r);
                return 1;
            }
        } else {
            result = worker(&w[i]);
        }
        printf("thread %d: ring 0 like main: %s, main's pid: %s, main's partner tid: %s, "
               "getppid %ld/%ld right, pages %ld/%d right, sum %ld, result %s\n", i,
               w[i].in_hrt == hrt_in_hrt() ? "yes" : "no", w[i].pid == main_pid ? "yes" : "no",
               w[i].tid == main_tid ? "yes" : "no", w[i].ppid_ok, calls, w[i].pages_ok, PAGES,
               w[i].sum, (long)result == w[i].sum * 2 ? "right" : "WRONG");
    }
    if (nested)                         /* (only in the HRT: natively there is nothing to ask) */
        printf("join of an unknown thread: %ld\n", hrt_thread_join(999999, NULL));
    return 0;
}
