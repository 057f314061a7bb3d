/* crasher MODE: prints "before crash" (flushed), then dies the way MODE says:
 *   segv       write to address 0x10                      -> SIGSEGV
 *   segv_read  read from 0xdead0000                       -> SIGSEGV
 *   ill        ud2                                        -> SIGILL
 *   div0       integer divide by zero (volatile operands) -> SIGFPE
 *   int3       int3                                       -> SIGTRAP
 *   abort      abort()                                    -> SIGABRT
 *   stack      unbounded recursion into the stack guard   -> SIGSEGV
 *   none       no crash: prints "survived" and exits 0
 * A shell reports death by signal S as status 128+S (139, 132, 136, 133, 134). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int sink;
static volatile int keep_going = 1;
/* Addresses kept in volatile objects so the compiler cannot see (or warn about) them. */
static volatile unsigned long bad_write_addr = 0x10, bad_read_addr = 0xdead0000UL;

static int recurse(int depth)
{
    volatile char pad[4096];
    pad[0] = (char)depth;
    pad[4095] = (char)depth;
    if (!keep_going)
        return pad[0];
    return recurse(depth + 1) + pad[0] + pad[4095];
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    static const char *modes[] = {"segv", "segv_read", "ill", "div0", "int3", "abort", "stack", "none"};
    int known = 0;
    for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; i++)
        known |= strcmp(mode, modes[i]) == 0;
    if (!known) {
        fprintf(stderr, "usage: %s segv|segv_read|ill|div0|int3|abort|stack|none\n", argv[0]);
        return 2;
    }

    printf("before crash\n");
    fflush(stdout);

    if (!strcmp(mode, "segv")) {
        *(volatile int *)bad_write_addr = 1;
    } else if (!strcmp(mode, "segv_read")) {
        sink = *(volatile int *)bad_read_addr;
    } else if (!strcmp(mode, "ill")) {
        __asm__ volatile("ud2");
    } else if (!strcmp(mode, "div0")) {
        volatile int a = 1, b = 0;
        sink = a / b;
    } else if (!strcmp(mode, "int3")) {
        __asm__ volatile("int3");
    } else if (!strcmp(mode, "abort")) {
        abort();
    } else if (!strcmp(mode, "stack")) {
        sink = recurse(0);
    }
    printf("survived\n");
    return strcmp(mode, "none") == 0 ? 0 : 1;
}
