/* SYSCALL in ring 0, performed natively (HRT vCPUs).
 *
 * Unicorn performs none of SYSCALL's semantics: its helper only calls the instruction hooks and
 * then adds the instruction's length to RIP. An HRT thread's `syscall` is not an exit to the VMM
 * on real hardware (ring 0 to ring 0, the AeroKernel's entry at LSTAR), so it must not cost a
 * Python call either: this hook, registered by hvm/vcpu.py (Vcpu.use_native_syscall) with the
 * addresses of the vCPU's live register file and SYSCALL MSRs, does what the CPU does:
 *
 *     RCX = the next instruction, R11 = RFLAGS, RFLAGS &= ~FMASK, RIP = LSTAR
 *
 * (RIP is written in place as LSTAR - 2: the helper adds the length afterwards, and no API write
 * of RIP means no forced exit from the translation loop, exactly as Vcpu.perform_syscall does.)
 * With LSTAR 0 it stops the run and sets `no_lstar` (RIP in `no_lstar_rip`); the VMM reports it.
 *
 * No Unicorn headers are needed: the two API functions arrive as pointers, the register ids as
 * numbers (unicorn.x86_const), both from the Python side. */
#include <stdint.h>

typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_stop_fn)(void *uc);

struct syscall_insn {
    uint64_t *regfile;              /* the live GPRs, in unicorn_quirks.GPR_ORDER, then RIP */
    const uint64_t *lstar;          /* the live MSR_LSTAR and MSR_FMASK */
    const uint64_t *fmask;
    uc_reg_fn reg_read;
    uc_reg_fn reg_write;
    uc_stop_fn emu_stop;
    int32_t rflags_id;              /* UC_X86_REG_RFLAGS */
    int32_t rcx, r11, rip;          /* indexes into regfile */
    uint64_t count;                 /* SYSCALLs performed */
    uint64_t no_lstar;              /* 1: a SYSCALL with LSTAR 0 stopped the run */
    uint64_t no_lstar_rip;
};

void mvemu_syscall_insn(void *uc, struct syscall_insn *s)
{
    uint64_t lstar = *s->lstar;
    uint64_t *rf = s->regfile;
    if (!lstar) {
        s->no_lstar = 1;
        s->no_lstar_rip = rf[s->rip];
        s->emu_stop(uc);
        return;
    }
    uint64_t rflags = 0;
    s->reg_read(uc, s->rflags_id, &rflags);
    rf[s->rcx] = rf[s->rip] + 2;
    rf[s->r11] = rflags;
    rf[s->rip] = lstar - 2;
    rflags = (rflags & ~*s->fmask) | 2;
    s->reg_write(uc, s->rflags_id, &rflags);
    s->count++;
}
