/* kmain: per-CPU bring-up, then the work loop the VMM drives through WAIT_EVENT and hlt. */
#include "cpu.h"
#include "hypercall.h"
#include "kernel.h"
#include "memlayout.h"
#include "mm.h"
#include "thread.h"

struct cpu cpus[MAX_CPUS];
unsigned ncpus;
extern char __kernel_start[];

static void early_fail(const char *msg)
{
    console_write(msg, strlen(msg));
    halt_forever();
}

/* The idle thread of each vCPU: run what is queued, then ask the VMM for work (the vCPU stops
 * at no cost until there is some). */
static void __attribute__((noreturn)) work_loop(struct cpu *c)
{
    struct hvm_mailbox *mb = c->mailbox;
    for (;;) {
        thread_run_queued();
        long kind = thread_wait_for_work(0);
        switch (kind) {
        case HVM_WORK_NONE:
        case HVM_WORK_WAKE:
            break;
        case HVM_WORK_THREAD:
            if (!thread_create_program(mb, c->id, mb->thread)) {
                kprintf("aerokernel: cpu %u: cannot create thread %lu (out of threads or memory)\n",
                        c->id, mb->thread);
                mb->result = -ENOMEM;
            }
            break;
        case HVM_WORK_CALL: {
            long (*fn)(long) = (long (*)(long))mb->func;
            long r = fn ? fn((long)mb->arg) : -EFAULT;
            mb->result = r;
            hvm_hypercall(HVM_HC_CALL_DONE, r, 0, 0, 0);
            break;
        }
        case HVM_WORK_SELFTEST: {
            long failures = selftest_run();
            mb->result = failures;
            hvm_hypercall(HVM_HC_CALL_DONE, failures, 0, 0, 0);
            break;
        }
        case HVM_WORK_HALT:
            halt_forever();
        default:
            if (kind < 0) {             /* WAIT_EVENT itself failed: do not spin on it */
                kprintf("aerokernel: cpu %u: WAIT_EVENT failed (%ld), halting\n", c->id, kind);
                halt_forever();
            }
            kprintf("aerokernel: cpu %u: unknown work kind %ld\n", c->id, kind);
            mb->result = -ENOSYS;
            hvm_hypercall(HVM_HC_CALL_DONE, -ENOSYS, 0, 0, 0);
        }
    }
}

void __attribute__((noreturn)) kmain(unsigned long boot_info_phys)
{
    struct hvm_boot_info *bi = phys_to_virt(boot_info_phys);
    if (bi->magic != HVM_BOOT_INFO_MAGIC)
        early_fail("aerokernel: bad boot info magic, halting\n");
    if (bi->cpu_id >= MAX_CPUS)
        early_fail("aerokernel: cpu id beyond MAX_CPUS, halting\n");

    struct cpu *c = &cpus[bi->cpu_id];
    c->id = bi->cpu_id;
    c->boot = bi;
    c->mailbox = phys_to_virt(bi->mailbox_pbase);
    ncpus = bi->num_cpus;
    gdt_init_cpu(c);                    /* TR loaded: this_cpu() works from here on */

    if (bi->high_base != HVM_HIGH_BASE || bi->kernel_vbase != HVM_KERNEL_VBASE
        || (unsigned long)__kernel_start != HVM_KERNEL_VBASE)
        panic("layout mismatch: boot info high_base %#lx kernel_vbase %#lx, linked at %p",
              bi->high_base, bi->kernel_vbase, __kernel_start);

    pmm_add_region(bi->free_pbase, bi->free_size);
    int r = cpu_stacks_init(c);
    if (r < 0)
        panic("cannot map the stacks of cpu %u (%d)", c->id, r);
    idt_init();                         /* exceptions are ours from here on */
    syscall_init_cpu(c);
    thread_init_cpu(c->id);
    c->online = 1;

    kprintf("aerokernel: cpu %u of %u up, %lu MiB free\n", c->id, ncpus, pmm_free_bytes() >> 20);
    hvm_hypercall(HVM_HC_HRT_READY, c->id, 0, 0, 0);
    work_loop(c);
}
