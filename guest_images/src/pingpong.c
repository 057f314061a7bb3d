/* Round trips between two processes over pipes (`pingpong pipe N`), between two threads over
   futexes (`pingpong futex N`), and fork+exit+wait of a process with 10 MB touched
   (`pingpong fork N`). Prints N. For benchmarks: host time per round trip. */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int word;
static long rounds;

static void fwait(int expect) { syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0); }
static void fwake(void) { syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static void *ponger(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        while (atomic_load(&word) != 1)
            fwait(0);
        atomic_store(&word, 0);
        fwake();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "pipe";
    rounds = argc > 2 ? atol(argv[2]) : 1000;
    if (!strcmp(mode, "pipe")) {
        int a[2], b[2];
        if (pipe(a) || pipe(b))
            return 1;
        char c = 'x';
        pid_t p = fork();
        if (p == 0) {
            for (long i = 0; i < rounds; i++) {
                if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1)
                    _exit(1);
            }
            _exit(0);
        }
        for (long i = 0; i < rounds; i++) {
            if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
                return 1;
        }
        waitpid(p, NULL, 0);
    } else if (!strcmp(mode, "futex")) {
        pthread_t t;
        pthread_create(&t, NULL, ponger, NULL);
        for (long i = 0; i < rounds; i++) {
            atomic_store(&word, 1);
            fwake();
            while (atomic_load(&word) != 0)
                fwait(1);
        }
        pthread_join(t, NULL);
    } else if (!strcmp(mode, "fork")) {
        size_t sz = 10 << 20;
        char *mem = malloc(sz);
        memset(mem, 1, sz);
        for (long i = 0; i < rounds; i++) {
            pid_t p = fork();
            if (p == 0)
                _exit(0);
            waitpid(p, NULL, 0);
        }
    } else {
        fprintf(stderr, "usage: pingpong pipe|futex|fork N\n");
        return 2;
    }
    printf("%ld\n", rounds);
    return 0;
}
