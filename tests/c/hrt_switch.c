/* hrt_switch [THREADS]: what a thread keeps across being switched out. Hybridized, its threads share
 * one HRT vCPU; each one, over and over, with values of its own in XMM8/XMM9, MXCSR (its own
 * rounding mode) and the x87 control word: writes a fresh page (a page fault forwarded to its
 * partner, while the vCPU runs the other threads: the AeroKernel must save and restore the x87/SSE
 * state), makes a system call (forwarded the same way), then spins in a register-only loop longer
 * than a 10 ms time slice, so the VMM stops the vCPU in it while partners are busy. Afterwards
 * every value must be its own, and the loop must have run exactly SPIN times: a vCPU resumed at a
 * stale RIP (the thread's last faulting store, tests/test_vcpu.py has the Unicorn fact) would run
 * it again and count too far. Prints one line per thread, in thread order. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include "testlib.h"

#define ROUNDS 8
#define SPIN 3000000

struct result { long bad_xmm, bad_mxcsr, bad_fpcw, bad_count; };

static void *worker(void *arg)
{
    long id = (long)arg;
    struct result *r = calloc(1, sizeof *r);
    char *pages = mmap(NULL, ROUNDS * 4096UL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!r || pages == MAP_FAILED)
        return NULL;
    for (int i = 0; i < ROUNDS; i++) {
        double a = id * 1000.0 + i + 0.25, b = -a * 3.0, a_out, b_out;
        unsigned mx_in = 0x1f80 | (unsigned)(id & 3) << 13, mx_out;       /* rounding control */
        unsigned short cw_in = (unsigned short)(0x037f & ~0x0300) | (unsigned short)((id & 1) ? 0x200 : 0x300), cw_out;
        unsigned long count;
        __asm__ volatile(
            "movq %[a], %%xmm8\n\t"
            "movq %[b], %%xmm9\n\t"
            "ldmxcsr %[mx_in]\n\t"
            "fldcw %[cw_in]\n\t"
            "xor %%r8d, %%r8d\n\t"
            "movb $1, (%[page])\n\t"            /* a page fault */
            "mov %[nr], %%eax\n\t"
            "syscall\n\t"                       /* a system call */
            "mov %[spin], %%edx\n"
            "1:\n\t"
            "inc %%r8\n\t"
            "dec %%edx\n\t"
            "jnz 1b\n\t"
            "movq %%xmm8, %[a_out]\n\t"
            "movq %%xmm9, %[b_out]\n\t"
            "stmxcsr %[mx_out]\n\t"
            "fnstcw %[cw_out]\n\t"
            "mov %%r8, %[count]\n\t"
            : [a_out] "=r"(a_out), [b_out] "=r"(b_out), [mx_out] "=m"(mx_out), [cw_out] "=m"(cw_out),
              [count] "=r"(count)
            : [a] "r"(a), [b] "r"(b), [mx_in] "m"(mx_in), [cw_in] "m"(cw_in), [page] "r"(pages + i * 4096UL),
              [nr] "i"(SYS_getppid), [spin] "i"(SPIN)
            : "rax", "rcx", "rdx", "r8", "r11", "xmm8", "xmm9", "memory", "cc");
        r->bad_xmm += a_out != a || b_out != b;
        r->bad_mxcsr += (mx_out & ~0x3fu) != mx_in;                       /* not the sticky flags */
        r->bad_fpcw += cw_out != cw_in;
        r->bad_count += count != SPIN;
        __asm__ volatile("ldmxcsr %0" : : "m"((unsigned){0x1f80}));
        __asm__ volatile("fldcw %0" : : "m"((unsigned short){0x037f}));
    }
    return r;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    pthread_t t[16];
    if (n < 1 || n > 16)
        return 2;
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 1;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        struct result *r;
        pthread_join(t[i], (void **)&r);
        if (!r)
            return 1;
        printf("thread %d: %d rounds, xmm %s, mxcsr %s, x87 control word %s, loop count %s\n", i, ROUNDS,
               r->bad_xmm ? "CHANGED" : "kept", r->bad_mxcsr ? "CHANGED" : "kept",
               r->bad_fpcw ? "CHANGED" : "kept", r->bad_count ? "WRONG" : "right");
        failed |= r->bad_xmm || r->bad_mxcsr || r->bad_fpcw || r->bad_count;
    }
    return failed;
}
