/* a | b | c built by hand with pipe, fork, dup2 and execve of this same program in other modes. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>

static char *self;

static int produce(void)
{
    for (int i = 1; i <= 2000; i++)
        printf("line %d of the pipeline\n", i);
    return 0;
}

static int upcase(void)
{
    int c;
    while ((c = getchar()) != EOF)
        putchar(toupper(c));
    return 0;
}

static int count(void)
{
    long lines = 0, bytes = 0;
    int c;
    while ((c = getchar()) != EOF) {
        bytes++;
        lines += c == '\n';
    }
    printf("%ld lines, %ld bytes\n", lines, bytes);
    return 7;
}

static pid_t spawn(const char *mode, int in, int out)
{
    pid_t p = fork();
    if (p == 0) {
        if (in != 0) { dup2(in, 0); close(in); }
        if (out != 1) { dup2(out, 1); close(out); }
        char *argv[] = {self, (char *)mode, NULL};
        execve(self, argv, (char *[]){NULL});
        perror("execve");
        _exit(127);
    }
    return p;
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1 && !strcmp(argv[1], "produce")) return produce();
    if (argc > 1 && !strcmp(argv[1], "upcase")) return upcase();
    if (argc > 1 && !strcmp(argv[1], "count")) return count();
    int ab[2], bc[2];
    if (pipe(ab) || pipe(bc)) { perror("pipe"); return 1; }
    pid_t a = spawn("produce", 0, ab[1]);
    close(ab[1]);
    pid_t b = spawn("upcase", ab[0], bc[1]);
    close(ab[0]);
    close(bc[1]);
    pid_t c = spawn("count", bc[0], 1);
    close(bc[0]);
    int sa, sb, sc;                     /* wait for all three before printing: c writes to stdout too */
    waitpid(a, &sa, 0);
    waitpid(b, &sb, 0);
    waitpid(c, &sc, 0);
    printf("a: %d\nb: %d\nc: %d\n", WEXITSTATUS(sa), WEXITSTATUS(sb), WEXITSTATUS(sc));
    /* EOF and EPIPE */
    int p[2];
    pipe(p);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    printf("write to a pipe without reader: %s\n", write(p[1], "x", 1) < 0 ? "EPIPE" : "?");
    return 0;
}
