/* Thin wrappers around privileged x86-64 instructions. */
#ifndef AK_X86_H
#define AK_X86_H

#include <stdint.h>

#define MSR_EFER        0xC0000080u
#define MSR_STAR        0xC0000081u
#define MSR_LSTAR       0xC0000082u
#define MSR_CSTAR       0xC0000083u
#define MSR_FMASK       0xC0000084u
#define EFER_SCE        0x1UL

#define CR0_WP          (1UL << 16)

#define RFLAGS_TF       0x100UL
#define RFLAGS_IF       0x200UL
#define RFLAGS_DF       0x400UL
#define RFLAGS_IOPL     0x3000UL
#define RFLAGS_NT       0x4000UL
#define RFLAGS_AC       0x40000UL

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}

static inline uint64_t read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }

static inline void invlpg(unsigned long va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
/* Wait for work: hlt with interrupts enabled, as an idle loop does on hardware; the VMM resumes
 * the vCPU after the hlt once work is queued for it (hlt with IF clear halts for good). */
static inline void wait_for_interrupt(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

static inline uint16_t str(void)
{
    uint16_t sel;
    __asm__ volatile("str %0" : "=r"(sel));
    return sel;
}

static inline uint64_t read_rflags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

/* Halt this vCPU for good (IF stays 0, so nothing wakes it). */
static inline __attribute__((noreturn)) void halt_forever(void)
{
    for (;;)
        hlt();
}

#endif
