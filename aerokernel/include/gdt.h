/* GDT layout (shared by all CPUs; safe to include from assembly).
 *   0x00 null
 *   0x08 kernel code, 64-bit     (= HVM_KERNEL_CS, the ABI's selector)
 *   0x10 kernel data             (= HVM_KERNEL_DS)
 *   0x18 unused
 *   0x23 user code, 32-bit  \
 *   0x2b user data           > Linux's user selectors, mirrored so the program's view of the
 *   0x33 user code, 64-bit  /  GDT (superposition, DESIGN.md section 8) is the same in the HRT
 *   0x38 unused
 *   0x40 + 16*cpu  the TSS of cpu (16-byte system descriptors)
 */
#ifndef AK_GDT_H
#define AK_GDT_H

#include "hvm_abi.h"

#define GDT_KCODE       HVM_KERNEL_CS
#define GDT_KDATA       HVM_KERNEL_DS
#define GDT_USER32_CS   0x23
#define GDT_USER_DS     0x2b
#define GDT_USER_CS     0x33
#define GDT_TSS_INDEX0  8
#define GDT_TSS_SEL(cpu) ((GDT_TSS_INDEX0 + 2 * (cpu)) << 3)

#define MAX_CPUS        64
#define GDT_ENTRIES     (GDT_TSS_INDEX0 + 2 * MAX_CPUS)

#endif
