/* Self-test ids (reported with HVM_HC_SELFTEST) and the patterns of the syscall test (shared
 * by selftest.c and selftest_asm.S). */
#ifndef AK_SELFTEST_H
#define AK_SELFTEST_H

#define ST_PAGEFAULT    1
#define ST_WP           2
#define ST_DIVIDE       3
#define ST_INT3         4
#define ST_SYSCALL      5
#define ST_CONSOLE      6
#define ST_NESTED       7
#define ST_THREADS      8

/* Register patterns loaded before `syscall` and checked after it. */
#define ST_RBX  0x1b1b1b1b1b1b1b1b
#define ST_RBP  0x1e1e1e1e1e1e1e1e
#define ST_R12  0x1212121212121212
#define ST_R13  0x1313131313131313
#define ST_R14  0x1414141414141414
#define ST_RDX  0x1d1d1d1d1d1d1d1d
#define ST_RSI  0x1a1a1a1a1a1a1a1a
#define ST_RDI  0x1f1f1f1f1f1f1f1f
#define ST_R8   0x0808080808080808
#define ST_R9   0x0909090909090909
#define ST_R10  0x1010101010101010
#define ST_REDZONE 0x5a5a5a5a00000000   /* + i in the i-th quadword of the 128-byte red zone */

#ifndef __ASSEMBLER__
/* What st_syscall_run saw right after its `syscall` (RSP as it came back) and the red zone. */
struct st_syscall_out {
    unsigned long rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
    unsigned long rsp;
    unsigned long redzone[16];
};

long st_divide(long dividend, long divisor);      /* the #DE fixup returns the dividend */
void st_int3(void);
void st_syscall_run(struct st_syscall_out *out);
long st_syscall_raw(long nr);
extern char st_divide_insn[], st_int3_after[], st_syscall_ret[];
#endif

#endif
