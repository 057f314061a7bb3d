/* The AeroKernel's virtual memory layout: every address constant in one place (like xv6's
 * memlayout.h). The ABI numbers (HVM_HIGH_BASE, HVM_KERNEL_VBASE, ...) come from hvm_abi.h,
 * generated from hvm/abi.py; everything here is derived from them. */
#ifndef AK_MEMLAYOUT_H
#define AK_MEMLAYOUT_H

#include "hvm_abi.h"

#define PAGE_SIZE       0x1000UL
#define PAGE_MASK       (~(PAGE_SIZE - 1))

/* [HVM_KERNEL_VBASE, +image span): the kernel image, mapped by the VMM with 4 KiB pages.
 * Everything else below lives in the same 1 GiB slot (PML4 511, PDPT 510) that the VMM
 * created for the image; the kernel maps these pages itself (mm.c). */

/* Per-CPU stacks: each CPU owns a KSTACK_WINDOW-sized window holding KSTACK_SLOTS stacks of
 * KSTACK_SIZE, each with an unmapped guard page below it (an overflow is a #PF, not silent
 * corruption). Slot 0 is the syscall stack, slots 1..7 are IST1..IST7. */
#define KSTACK_BASE     (HVM_KERNEL_VBASE + 0x10000000UL)
#define KSTACK_WINDOW   0x40000UL                   /* 256 KiB per CPU */
#define KSTACK_SIZE     0x4000UL                    /* 16 KiB */
#define KSTACK_GUARD    PAGE_SIZE
#define KSTACK_SLOTS    8
#define KSTACK_SLOT_SYSCALL 0

/* Demand-zero region: a not-present fault here gets a fresh zeroed frame, mapped RW+NX.
 * A not-present fault anywhere else in the kernel half is a kernel bug (fatal). */
#define KDEMAND_BASE    (HVM_KERNEL_VBASE + 0x20000000UL)
#define KDEMAND_END     (HVM_KERNEL_VBASE + 0x30000000UL)

/* Kernel stacks of HRT threads: one KSTACK-sized slot (with a guard page) per thread id, mapped
 * when the slot is first used and kept for the next thread that reuses it. */
#define TSTACK_BASE     (HVM_KERNEL_VBASE + 0x30000000UL)
#define TSTACK_SLOT     (0x4000UL + PAGE_SIZE)

/* Self-test pages: per CPU, inside the demand region (so CPUs never share one). */
#define SELFTEST_WINDOW 0x100000UL
#define SELFTEST_VA(cpu, n) (KDEMAND_BASE + (unsigned long)(cpu) * SELFTEST_WINDOW + (n) * PAGE_SIZE)

#ifndef __ASSEMBLER__
/* All guest-physical memory is mapped RW+NX at HVM_HIGH_BASE + P (2 MiB pages) by the VMM. */
static inline void *phys_to_virt(unsigned long pa) { return (void *)(HVM_HIGH_BASE + pa); }
static inline unsigned long virt_to_phys_high(const void *va) { return (unsigned long)va - HVM_HIGH_BASE; }
#endif

#endif
