/* stdio_exit [MODE] [STATUS]: stdio buffering and process exit paths.
 *   MODE = a number N  -> exit(N) after the normal output         (default: exit(3))
 *   MODE = atexit      -> registers three atexit handlers that print, then exit(STATUS|0)
 *   MODE = _exit       -> leaves stdout output in the buffer and calls _exit(STATUS|5):
 *                         the buffered text is lost, exactly as natively
 *   MODE = return      -> returns STATUS|7 from main
 * stdout gets an explicit 8 KiB full buffer (so the output is the same on a tty, a pipe or a
 * file, and the same under glibc and musl); an unbuffered FILE on a dup of fd 1 and raw
 * write(1) calls land in stdout *before* the buffered text. stderr output is separate and
 * identical in every mode. Both streams end with a partial line (no trailing newline). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

static char outbuf[8192];

static void h1(void) { printf("atexit handler 1 (registered first, runs last)\n"); }
static void h2(void) { puts("atexit handler 2"); }
static void h3(void) { fputs("atexit handler 3 (registered last, runs first)\n", stdout); fputs("stderr from atexit handler 3\n", stderr); }

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "3";
    int status = 3;

    if (setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf) != 0)
        return 99;
    setvbuf(stderr, NULL, _IONBF, 0);

    FILE *raw = fdopen(dup(1), "w");
    if (!raw)
        return 98;
    setvbuf(raw, NULL, _IONBF, 0);

    printf("line 1 via printf: %d %s %.3f\n", 42, "str", 2.5);
    puts("line 2 via puts");
    fputs("line 3 via fputs, partial ... ", stdout);
    fputs("completed\n", stdout);
    fputc('c', stdout);
    putchar('\n');
    fwrite("line 5 via fwrite\n", 1, 18, stdout);
    printf("partial line without newline (mode %s)", mode);

    fputs("stderr: unbuffered line\n", stderr);
    fprintf(stderr, "stderr: fprintf %d\n", 7);
    fputs("stderr: partial ", stderr);
    fputs("and rest\n", stderr);

    fputs("unbuffered FILE on dup(1): first\n", raw);
    if (write(1, "raw write(1): second\n", 21) != 21)
        return 97;
    fprintf(raw, "unbuffered FILE on dup(1): third\n");
    fclose(raw);

    /* Line-buffered mode on stderr from here on (allowed: no output pending on stderr). */
    setvbuf(stderr, NULL, _IOLBF, 0);
    fputs("stderr: line-buffered, ends without newline", stderr);

    if (strcmp(mode, "atexit") == 0) {
        atexit(h1);
        atexit(h2);
        atexit(h3);
        printf("\nmain calls exit(%d)\n", (int)arg_long(argc, argv, 2, 0));
        exit((int)arg_long(argc, argv, 2, 0));
    }
    if (strcmp(mode, "_exit") == 0) {
        fflush(stderr);
        _exit((int)arg_long(argc, argv, 2, 5));
    }
    if (strcmp(mode, "return") == 0)
        return (int)arg_long(argc, argv, 2, 7);
    status = (int)arg_long(argc, argv, 1, 3);
    exit(status);
}
