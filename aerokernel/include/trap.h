/* The frame the ISR stubs (isr.S) build: general registers, vector, error code, then what the
 * CPU (here: the VMM, emulating it) pushed. */
#ifndef AK_TRAP_H
#define AK_TRAP_H

#include "hvm_abi.h"

#define T_DE    0
#define T_DB    1
#define T_NMI   2
#define T_BP    3
#define T_OF    4
#define T_BR    5
#define T_UD    6
#define T_NM    7
#define T_DF    8
#define T_TS    10
#define T_NP    11
#define T_SS    12
#define T_GP    13
#define T_PF    14
#define T_MF    16
#define T_AC    17
#define T_MC    18
#define T_XM    19
#define T_VE    20
#define T_CP    21
#define T_PREEMPT HVM_PREEMPT_VECTOR  /* the VMM's time-slice interrupt (32): a program thread yields */
#define NUM_VECTORS (T_PREEMPT + 1)

/* #PF error code bits */
#define PF_P    0x1     /* protection violation (else not present) */
#define PF_W    0x2     /* write */
#define PF_U    0x4     /* user mode */
#define PF_RSVD 0x8
#define PF_I    0x10    /* instruction fetch */

#define TF_WORDS 22     /* sizeof(struct trapframe) / 8, used by isr.S */

#ifndef __ASSEMBLER__
struct trapframe {
    unsigned long r15, r14, r13, r12, r11, r10, r9, r8;
    unsigned long rbp, rdi, rsi, rdx, rcx, rbx, rax;
    unsigned long vector, error;        /* error is 0 for vectors without one */
    unsigned long rip, cs, rflags, rsp, ss;
};

_Static_assert(sizeof(struct trapframe) == TF_WORDS * 8, "trapframe layout");

void trap(struct trapframe *tf);
struct trapframe *trap_stack(struct trapframe *tf);   /* isr.S: the stack trap() runs on */
const char *trap_name(unsigned long vector);

/* Exception table (like Linux's __ex_table): a fault at `insn` resumes at `fixup`. */
struct extable_entry {
    unsigned long insn, fixup;
};
unsigned long extable_find(unsigned long rip);
#endif

/* For assembly: record that a fault at `from` resumes at `to`. */
#define EXTABLE(from, to)                 \
    .pushsection __ex_table, "a";         \
    .balign 8;                            \
    .quad from, to;                       \
    .popsection

#endif
