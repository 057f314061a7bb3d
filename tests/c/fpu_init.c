/* fpu_init: the FPU state a new process starts with (Linux: x87 control word 0x37F, MXCSR 0x1F80),
 * and long double arithmetic that depends on it. */
#include "testlib.h"

int main(void)
{
    unsigned short cw;
    unsigned int mxcsr;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    printf("x87 control word %#x\n", cw);
    printf("mxcsr %#x\n", mxcsr);
    volatile long double three = 3.0L;
    long double third = 1.0L / three;
    printf("1/3 as long double %.21Lf\n", third);
    volatile double big = 1e308;
    printf("double overflow %f\n", big * 10.0);
    return 0;
}
