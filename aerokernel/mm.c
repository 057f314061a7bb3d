/* Physical frames (bump allocation over the boot info's free region + a free list) and 4 KiB
 * mappings in the current page tables, reached through the VMM's HIGH_BASE map of all
 * guest-physical memory. */
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "spinlock.h"

/* -- physical frames -------------------------------------------------------------------------- */
#define MAX_REGIONS 4

static struct region {
    unsigned long next, end;        /* bump pointer, end of the region */
    unsigned long base;
} regions[MAX_REGIONS];
static unsigned nregions;
static unsigned long free_list;     /* physical address of the first freed frame (0: none) */
static unsigned long free_listed;   /* frames on the free list */
static struct spinlock pmm_lock = SPINLOCK_INIT("pmm");

/* Every CPU's boot info names the free region; the VMM gives all of them the same one, so it is
 * registered once. A disjoint region (a VMM that splits memory per CPU) is added. */
void pmm_add_region(unsigned long base, unsigned long size)
{
    unsigned long start = (base + PAGE_SIZE - 1) & PAGE_MASK, end = (base + size) & PAGE_MASK;
    if (end <= start)
        return;
    spin_lock(&pmm_lock);
    for (unsigned i = 0; i < nregions; i++)
        if (start < regions[i].end && end > regions[i].base)
            goto out;                               /* already known (or overlapping) */
    if (nregions == MAX_REGIONS) {
        spin_unlock(&pmm_lock);
        panic("too many memory regions");
    }
    regions[nregions++] = (struct region){ .next = start, .end = end, .base = start };
out:
    spin_unlock(&pmm_lock);
}

unsigned long page_alloc(void)
{
    unsigned long pa = 0;
    spin_lock(&pmm_lock);
    if (free_list) {
        pa = free_list;
        free_list = *(unsigned long *)phys_to_virt(pa);
        free_listed--;
    } else {
        for (unsigned i = 0; i < nregions; i++)
            if (regions[i].next < regions[i].end) {
                pa = regions[i].next;
                regions[i].next += PAGE_SIZE;
                break;
            }
    }
    spin_unlock(&pmm_lock);
    if (pa)
        memset(phys_to_virt(pa), 0, PAGE_SIZE);
    return pa;
}

void page_free(unsigned long pa)
{
    if (!pa || (pa & ~PAGE_MASK))
        panic("page_free(%#lx): not a frame", pa);
    spin_lock(&pmm_lock);
    *(unsigned long *)phys_to_virt(pa) = free_list;
    free_list = pa;
    free_listed++;
    spin_unlock(&pmm_lock);
}

unsigned long pmm_free_bytes(void)
{
    spin_lock(&pmm_lock);
    unsigned long n = free_listed * PAGE_SIZE;
    for (unsigned i = 0; i < nregions; i++)
        n += regions[i].end - regions[i].next;
    spin_unlock(&pmm_lock);
    return n;
}

/* -- page tables ------------------------------------------------------------------------------ */
/* One lock for every edit of the (shared) kernel half of the page tables. */
static struct spinlock pt_lock = SPINLOCK_INIT("pagetables");

static inline unsigned pt_index(unsigned long va, int level)      /* level 4 = PML4 ... 1 = PT */
{
    return (va >> (12 + 9 * (level - 1))) & 0x1FF;
}

static int kernel_half(unsigned long va)
{
    return (va >> 47) == 0x1FFFF;           /* upper canonical half: PML4 entries 256..511 */
}

/* The level-1 entry for va, creating missing tables if `create`. NULL if a table is missing
 * (and !create), memory is exhausted, or va lies in a 2 MiB / 1 GiB page. pt_lock held. */
static uint64_t *walk(unsigned long va, int create)
{
    unsigned long table = read_cr3() & PTE_ADDR;
    for (int level = 4; level > 1; level--) {
        uint64_t *e = (uint64_t *)phys_to_virt(table) + pt_index(va, level);
        if (!(*e & PTE_P)) {
            if (!create)
                return 0;
            unsigned long pa = page_alloc();
            if (!pa)
                return 0;
            *e = pa | PTE_P | PTE_W;        /* permissions are decided by the leaf */
        } else if (*e & PTE_PS) {
            return 0;
        }
        table = *e & PTE_ADDR;
    }
    return (uint64_t *)phys_to_virt(table) + pt_index(va, 1);
}

int mm_map(unsigned long va, unsigned long pa, unsigned long flags)
{
    if (!kernel_half(va) || (va & ~PAGE_MASK) || (pa & ~PAGE_MASK))
        return -EINVAL;
    int r = 0;
    spin_lock(&pt_lock);
    uint64_t *e = walk(va, 1);
    if (!e)
        r = -ENOMEM;
    else if (*e & PTE_P)
        r = -EEXIST;
    else
        *e = pa | PTE_P | (flags & (PTE_W | PTE_NX | PTE_G));
    spin_unlock(&pt_lock);
    if (!r)
        invlpg(va);
    return r;
}

int mm_protect(unsigned long va, unsigned long flags)
{
    if (!kernel_half(va))
        return -EINVAL;
    int r = 0;
    spin_lock(&pt_lock);
    uint64_t *e = walk(va, 0);
    if (!e || !(*e & PTE_P))
        r = -ENOENT;
    else
        *e = (*e & ~(PTE_W | PTE_NX)) | (flags & (PTE_W | PTE_NX));
    spin_unlock(&pt_lock);
    invlpg(va);
    return r;
}

int mm_unmap(unsigned long va, unsigned long *pa)
{
    if (!kernel_half(va))
        return -EINVAL;
    int r = 0;
    spin_lock(&pt_lock);
    uint64_t *e = walk(va, 0);
    if (!e || !(*e & PTE_P)) {
        r = -ENOENT;
    } else {
        if (pa)
            *pa = *e & PTE_ADDR;
        *e = 0;
    }
    spin_unlock(&pt_lock);
    invlpg(va);
    return r;
}

/* The entry that maps va, at whatever level it is a leaf (0 if unmapped). Lock-free: used by
 * the fatal-exception dump, which must not wait. */
uint64_t mm_lookup(unsigned long va)
{
    unsigned long table = read_cr3() & PTE_ADDR;
    for (int level = 4; level >= 1; level--) {
        uint64_t e = ((uint64_t *)phys_to_virt(table))[pt_index(va, level)];
        if (!(e & PTE_P) || level == 1 || ((level == 2 || level == 3) && (e & PTE_PS)))
            return e & PTE_P ? e : 0;
        table = e & PTE_ADDR;
    }
    return 0;
}

int mm_map_fresh(unsigned long va, unsigned long size)
{
    for (unsigned long off = 0; off < size; off += PAGE_SIZE) {
        unsigned long pa = page_alloc();
        if (!pa)
            return -ENOMEM;
        int r = mm_map(va + off, pa, PTE_W | PTE_NX);
        if (r < 0) {
            page_free(pa);
            return r;
        }
    }
    return 0;
}
