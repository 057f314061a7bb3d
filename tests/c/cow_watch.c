/* A watched global across fork and copy-on-write (tests/test_gdb.py): the parent writes it, a
   child writes its own copy, then the parent writes it again once the page is its own. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int value = 1;

int main(void)
{
    value = 2;
    pid_t p = fork();
    if (p == 0) {
        value = 100;
        _exit(0);
    }
    waitpid(p, 0, 0);
    value = 3;
    value = 4;
    printf("value %d\n", value);
    return 0;
}
