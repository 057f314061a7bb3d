/* Signal handlers: SIGALRM, SIGUSR1 to self and to a child, a SIGSEGV handler that longjmps out,
   SIGPIPE, masks and pending signals, SA_RESTART vs EINTR, sigsuspend, siginfo. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hits[65];
static sigjmp_buf jb;
static volatile void *fault_addr;
static volatile int code;

static void count(int s) { hits[s]++; }
static void on_segv(int s, siginfo_t *si, void *uc)
{
    (void)s; (void)uc;
    fault_addr = si->si_addr;
    code = si->si_code;
    siglongjmp(jb, 1);
}
static void on_info(int s, siginfo_t *si, void *uc)
{
    (void)uc;
    hits[s]++;
    code = si->si_code == SI_USER || si->si_code == SI_TKILL;
}

static void handle(int s, void (*h)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigaction(s, &sa, NULL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    handle(SIGUSR1, count, 0);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    printf("SIGUSR1 to self: %d\n", hits[SIGUSR1]);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    printf("SA_SIGINFO handler: hits %d, si_code from user %d\n", hits[SIGUSR2], code);

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR1);
    sigset_t pend;
    sigpending(&pend);
    printf("blocked: delivered %d, pending %d\n", hits[SIGUSR1], sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: delivered %d\n", hits[SIGUSR1]);

    handle(SIGALRM, count, 0);
    alarm(1);
    pause();
    printf("SIGALRM after pause: %d\n", hits[SIGALRM]);

    struct itimerval it = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    while (hits[SIGALRM] < 4)
        ;                                   /* spin: the timer must preempt a busy loop */
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    printf("interval timer fired during a busy loop: %s\n", hits[SIGALRM] >= 4 ? "yes" : "no");

    /* EINTR without SA_RESTART, restart with it */
    int p[2];
    pipe(p);
    char c;
    handle(SIGALRM, count, 0);
    alarm(1);
    ssize_t r = read(p[0], &c, 1);
    printf("read interrupted: %s\n", r < 0 && errno == EINTR ? "EINTR" : "?");
    handle(SIGALRM, count, SA_RESTART);
    pid_t w = fork();
    if (w == 0) {
        sleep(2);
        write(p[1], "z", 1);
        _exit(0);
    }
    alarm(1);
    r = read(p[0], &c, 1);
    printf("read with SA_RESTART: %zd '%c'\n", r, c);
    waitpid(w, NULL, 0);

    /* SIGUSR1 to a child that waits in sigsuspend */
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t child = fork();
    if (child == 0) {
        sigset_t none;
        sigemptyset(&none);
        hits[SIGUSR1] = 0;
        sigsuspend(&none);
        _exit(hits[SIGUSR1] == 1 ? 42 : 1);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    usleep(10000);
    kill(child, SIGUSR1);
    int st;
    waitpid(child, &st, 0);
    printf("child woken from sigsuspend: exit %d\n", WEXITSTATUS(st));

    /* SIGSEGV handler that longjmps out */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile int *)0x1000 = 1;
        printf("no fault?\n");
    } else {
        printf("SIGSEGV caught: addr %p code %s\n", (void *)fault_addr, code == SEGV_MAPERR ? "SEGV_MAPERR" : "?");
    }

    /* SIGPIPE default action kills a child */
    child = fork();
    if (child == 0) {
        int q[2];
        pipe(q);
        close(q[0]);
        write(q[1], "x", 1);
        _exit(0);
    }
    waitpid(child, &st, 0);
    printf("SIGPIPE kills: %s %d\n", WIFSIGNALED(st) ? "signaled" : "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));

    /* SIGCHLD handler */
    handle(SIGCHLD, count, 0);
    child = fork();
    if (child == 0)
        _exit(0);
    while (!hits[SIGCHLD])
        usleep(1000);
    waitpid(child, NULL, 0);
    printf("SIGCHLD: %d\n", hits[SIGCHLD]);
    return 0;
}
