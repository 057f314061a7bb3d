/* A small program to debug under `mvemu run --gdb` (tests/test_gdb.py, docs/gdb.md): a global that
   changes (for watchpoints), a function with locals, a loop to step through, an exit status.
   Compiled without optimisation (the pragma below) so that every local is there to print and
   `next` walks the lines in order. Argument: number of rounds (default 3); exit status 36 then. */
#pragma GCC optimize("O0")
#include <stdio.h>
#include <stdlib.h>

int counter;
static const char *greeting = "hello from debugme";

long scale(long x, long factor)
{
    long result = x * factor;
    counter += 1;
    return result + counter;
}

int main(int argc, char **argv)
{
    long total = 0;
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    for (int i = 0; i < rounds; i++)
        total += scale(i, 10);
    printf("%s: total %ld after %d rounds, counter %d\n", greeting, total, rounds, counter);
    return (int)(total % 50);
}
