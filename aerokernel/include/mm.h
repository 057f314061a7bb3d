/* Physical page allocator and page-table helpers. */
#ifndef AK_MM_H
#define AK_MM_H

#include <stdint.h>
#include "memlayout.h"

#define PTE_P   0x1UL
#define PTE_W   0x2UL
#define PTE_U   0x4UL
#define PTE_PS  0x80UL
#define PTE_G   0x100UL
#define PTE_NX  (1UL << 63)
#define PTE_ADDR 0x000ffffffffff000UL

/* Physical frames from [free_pbase, free_pbase + free_size) of the boot info. All CPUs share one
 * allocator: the first CPU to boot registers the region, later ones find it registered. */
void pmm_add_region(unsigned long base, unsigned long size);
unsigned long page_alloc(void);                /* physical address of a zeroed frame, 0 if none */
void page_free(unsigned long pa);
unsigned long pmm_free_bytes(void);

/* Page tables of the current CR3, walked and edited through the HIGH_BASE map. Only the kernel
 * half (the upper canonical half) is handled; the lower half belongs to the ROS after a merge.
 * Each returns 0 or a negative errno. The local TLB entry is invalidated. */
int mm_map(unsigned long va, unsigned long pa, unsigned long flags);   /* 4 KiB; flags: PTE_W, PTE_NX */
int mm_protect(unsigned long va, unsigned long flags);                 /* replace W/NX of a 4 KiB page */
int mm_unmap(unsigned long va, unsigned long *pa);                     /* *pa: the frame it mapped */
uint64_t mm_lookup(unsigned long va);                                  /* leaf entry (0 if none) */

/* Map [va, va + size) to fresh zeroed frames, RW+NX. */
int mm_map_fresh(unsigned long va, unsigned long size);

#endif
