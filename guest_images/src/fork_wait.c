/* fork + wait: exit codes and deaths by signal, reported through wait4/waitpid/waitid. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void describe(int status)
{
    if (WIFEXITED(status))
        printf("exited %d\n", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("killed by signal %d%s\n", WTERMSIG(status), WCOREDUMP(status) ? " (core)" : "");
    else
        printf("status %#x\n", status);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int c = 0; c < 4; c++) {
        pid_t p = fork();
        if (p == 0)
            _exit(c * 7);
        int st;
        pid_t w = waitpid(p, &st, 0);
        printf("child %d: ", w == p);
        describe(st);
    }
    int code = 0;
    int sigs[] = {SIGTERM, SIGKILL, SIGUSR1, SIGSEGV};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        pid_t p = fork();
        if (p == 0) {
            if (sigs[i] == SIGSEGV) {
                volatile int *bad = (volatile int *)(long)(8 + code);
                *bad = 1;
            }
            pause();
            _exit(99);
        }
        if (sigs[i] != SIGSEGV)
            kill(p, sigs[i]);
        int st;
        waitpid(p, &st, 0);
        printf("signal %d: ", sigs[i]);
        describe(st);
    }
    /* several children, reaped in any order */
    int n = 0, sum = 0;
    for (int i = 1; i <= 5; i++)
        if (fork() == 0)
            _exit(i);
    int st;
    while (wait(&st) > 0) {
        n++;
        sum += WEXITSTATUS(st);
    }
    printf("reaped %d children, sum of codes %d\n", n, sum);
    printf("wait with no children: %s\n", wait(&st) < 0 ? "ECHILD" : "?");
    /* WNOHANG and getppid */
    pid_t parent = getpid();
    int gate[2];                /* the child exits only after WNOHANG looked (no timing involved) */
    if (pipe(gate) != 0)
        return 1;
    pid_t p = fork();
    if (p == 0) {
        char c;
        close(gate[1]);
        if (read(gate[0], &c, 1) != 0)
            _exit(7);
        _exit(getppid() == parent ? 5 : 6);
    }
    close(gate[0]);
    printf("WNOHANG first: %d\n", waitpid(p, &st, WNOHANG));
    close(gate[1]);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, p, &si, WEXITED);
    printf("waitid: code %s status %d\n", si.si_code == CLD_EXITED ? "CLD_EXITED" : "?", si.si_status);
    return 3;
}
