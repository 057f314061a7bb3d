/* Exception delivery in ring 0, performed natively (HRT vCPUs).
 *
 * Unicorn delivers no exception through the IDT: it calls the interrupt hooks and goes on at RIP.
 * An exception of an HRT vCPU (a page fault of program code in the lower half, above all) is
 * delivered by the CPU to the AeroKernel on real hardware, with no exit to the VMM, so it must not
 * cost a Python call either. This hook, registered by hvm/vcpu.py (Vcpu.use_native_exceptions),
 * does what hvm/hrt.py's deliver_exception does, which is what the CPU does in 64-bit mode:
 *
 *     gate = IDT[vector] (present), stack = IST n from the TSS (or RSP), aligned down to 16;
 *     push SS, RSP, RFLAGS, CS, RIP and, for some vectors, the error code;
 *     RFLAGS &= ~(TF | NT | RF), and ~IF too through an interrupt gate; RIP = the gate's handler
 *
 * It also clears the pending-exception state as Vcpu._on_intr does (unicorn#1883: Unicorn keeps
 * `old_exception`, and the next fault would be taken for a double fault), and reads the error code
 * Unicorn leaves in the CPU state (the hook is not given it). CR2 is already set by Unicorn's MMU.
 *
 * Whatever it cannot do as simply, it hands to the Python hook untouched (`fallback`): no gate, an
 * IDT, TSS or stack it cannot reach (the Python path reports the triple fault), a handler in another
 * code segment, or `python_only` set (--trace, a debugger's watchpoints). Nothing is written before
 * everything has been read and the stack's frames translated, so the fallback sees the exception as
 * it was raised.
 *
 * RSP and RIP are written in place in the live register file: no API write of RIP, no forced exit
 * from the translation loop (Unicorn itself moves RIP so for INT n, just before the hooks run). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_translate_fn)(void *uc, uint64_t va, int prot, uint64_t *pa);
typedef int (*uc_mem_read_fn)(void *uc, uint64_t pa, void *bytes, uint64_t size);
typedef int (*uc_mem_write_fn)(void *uc, uint64_t pa, const void *bytes, uint64_t size);
typedef void (*uc_intr_cb)(void *uc, uint32_t intno, void *user);

struct uc_x86_mmr {                 /* unicorn/x86.h */
    uint16_t selector;
    uint64_t base;
    uint32_t limit;
    uint32_t flags;
};

struct exception_delivery {
    uint64_t *regfile;              /* the live GPRs, in unicorn_quirks.GPR_ORDER, then RIP */
    int32_t *old_exception;         /* the live pending-exception state (unicorn#1883) */
    const int32_t *error_code;      /* the live error code of the exception being raised */
    uc_reg_fn reg_read;
    uc_reg_fn reg_write;
    uc_translate_fn translate;      /* uc_vmem_translate: the vCPU's own MMU, no fault raised */
    uc_mem_read_fn mem_read;        /* guest-physical */
    uc_mem_write_fn mem_write;
    uc_intr_cb fallback;            /* the Python hook (Vcpu._on_intr) */
    void *fallback_user;
    int32_t idtr_id, tr_id, rflags_id, cs_id, ss_id;
    int32_t rsp, rip;               /* indexes into regfile */
    uint32_t python_only;           /* nonzero: every exception goes to the fallback */
    uint64_t count;                 /* delivered here */
    uint64_t fallbacks;             /* handed to the fallback */
};

#define UC_PROT_READ 1
#define UC_PROT_WRITE 2
#define PAGE 4096UL

static int has_error_code(uint32_t v)
{
    return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

/* Read n bytes at virtual address va through the vCPU's MMU; 0 on success. */
static int vread(struct exception_delivery *s, void *uc, uint64_t va, void *buf, uint64_t n)
{
    uint8_t *b = buf;
    while (n) {
        uint64_t chunk = PAGE - (va & (PAGE - 1)), pa;
        if (chunk > n)
            chunk = n;
        if (s->translate(uc, va, UC_PROT_READ, &pa) || s->mem_read(uc, pa, b, chunk))
            return -1;
        b += chunk, va += chunk, n -= chunk;
    }
    return 0;
}

static void fall_back(struct exception_delivery *s, void *uc, uint32_t intno)
{
    s->fallbacks++;
    s->fallback(uc, intno, s->fallback_user);
}

void mvemu_exception(void *uc, uint32_t intno, struct exception_delivery *s)
{
    uint64_t *rf = s->regfile;
    struct uc_x86_mmr idtr, tr;
    uint64_t gate[2];
    if (s->python_only || intno > 255)
        return fall_back(s, uc, intno);
    s->reg_read(uc, s->idtr_id, &idtr);
    if (idtr.limit < 16 * intno + 15 || vread(s, uc, idtr.base + 16 * intno, gate, 16))
        return fall_back(s, uc, intno);
    uint64_t lo = gate[0], hi = gate[1];
    uint32_t attrs = (lo >> 40) & 0xFF;
    uint64_t handler = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000UL) | ((hi & 0xFFFFFFFFUL) << 32);
    uint64_t selector = (lo >> 16) & 0xFFFF, ist = (lo >> 32) & 7;
    uint64_t cs = 0, ss = 0, rflags = 0, rsp = rf[s->rsp], new_rsp = rsp;
    s->reg_read(uc, s->cs_id, &cs);
    if (!(attrs & 0x80) || selector != cs)          /* not present; a segment load: the fallback */
        return fall_back(s, uc, intno);
    if (ist) {
        s->reg_read(uc, s->tr_id, &tr);
        if (vread(s, uc, tr.base + 0x24 + 8 * (ist - 1), &new_rsp, 8))
            return fall_back(s, uc, intno);
    }
    new_rsp &= ~0xFUL;
    s->reg_read(uc, s->rflags_id, &rflags);
    s->reg_read(uc, s->ss_id, &ss);
    uint64_t frame[6];
    unsigned n = 0;
    if (has_error_code(intno))
        frame[n++] = (uint32_t)*s->error_code;
    frame[n++] = rf[s->rip];
    frame[n++] = cs;
    frame[n++] = rflags;
    frame[n++] = rsp;
    frame[n++] = ss;
    uint64_t size = 8UL * n;
    new_rsp -= size;
    /* The frame's page(s), both translated for writing before anything is written. */
    uint64_t first = PAGE - (new_rsp & (PAGE - 1)), pa0, pa1 = 0;
    if (first > size)
        first = size;
    if (s->translate(uc, new_rsp, UC_PROT_WRITE, &pa0) ||
        (first < size && s->translate(uc, new_rsp + first, UC_PROT_WRITE, &pa1)))
        return fall_back(s, uc, intno);
    if (s->mem_write(uc, pa0, frame, first) ||
        (first < size && s->mem_write(uc, pa1, (uint8_t *)frame + first, size - first)))
        return fall_back(s, uc, intno);              /* (a frame outside guest-physical memory) */
    *s->old_exception = -1;
    uint64_t new_flags = rflags & ~(0x100UL | 0x4000UL | 0x10000UL);   /* TF, NT, RF */
    if ((attrs & 0xF) == 0xE)                        /* interrupt gate: IF off */
        new_flags &= ~0x200UL;
    s->reg_write(uc, s->rflags_id, &new_flags);
    rf[s->rsp] = new_rsp;
    rf[s->rip] = handler;
    s->count++;
}
