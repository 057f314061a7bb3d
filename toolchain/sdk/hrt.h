/* The Multiverse accelerator SDK (paper III-C, Fig. 4; docs/overrides.md).
 *
 * A program that is recompiled against this header and linked with libmvhrt.a can start a
 * function on the HRT and, from HRT context, call AeroKernel functions. `mvemu hybridize` redirects
 * each of these functions with a function override (its default config, toolchain/overrides.toml):
 * called in HRT context (ring 0) it is the AeroKernel or runtime function; anywhere else (a native
 * run, or ROS-side code under mvemu) its own body runs, the native fallback documented below.
 * So the same binary runs everywhere, and says so when it is not in the HRT.
 *
 * The library needs no libc (it works with glibc and musl, static and static-pie). Keep it
 * unstripped: overrides find these functions by their symbols.
 *
 *   cc -static -I DIR prog.c DIR/libmvhrt.a -o prog       # DIR from `mvemu hybridize --sdk DIR`
 *   mvemu hybridize prog -o prog.hrt && mvemu run prog.hrt
 */
#ifndef MV_HRT_H
#define MV_HRT_H

#ifdef __cplusplus
extern "C" {
#endif

#define HRT_ENOSYS 38                          /* Linux's ENOSYS: "not in the HRT" */
#define HRT_HIGH_BASE 0xffff800000000000UL     /* the HRT sees physical address P at HIGH_BASE + P */

/* Run fn(arg) on the HRT and return its result.
 * HRT context: runtime:mv_invoke_func, fn in a new HRT thread, waited for.
 * Native fallback: fn(arg) right here. */
void *hrt_invoke_func(void *(*fn)(void *), void *arg);

/* The current privilege level (CS & 3): 0 in the HRT, 3 in a Linux process. Not an override: true
 * everywhere. */
int hrt_cpl(void);

/* 1 in HRT context (CPL 0), else 0. */
int hrt_in_hrt(void);

/* AeroKernel calls (aerokernel/exports.c). In HRT context: the AeroKernel function of the same
 * name with aerokernel_ in front. Native fallback: -HRT_ENOSYS. A negative result is -errno. */
long hrt_read_cr0(void);                       /* CR0 (PE bit 0, WP bit 16, PG bit 31) */
long hrt_read_cr3(void);                       /* CR3: the HRT page tables' physical address */
long hrt_read_cr4(void);                       /* CR4 (PAE bit 5) */
long hrt_cpu_id(void);                         /* the HRT vCPU, 0 .. n-1 */
long hrt_thread_id(void);                      /* the AeroKernel thread running the caller */
long hrt_irq_disable(void);                    /* cli; returns 1 if interrupts were on */
long hrt_irq_restore(long was_on);             /* sti if was_on; returns whether they were on */
long hrt_irq_enabled(void);                    /* RFLAGS.IF */
long hrt_page_alloc(void);                     /* a zeroed 4 KiB physical page, or -ENOMEM */
long hrt_page_free(long pa);                   /* give it back: 0 or -EINVAL */
long hrt_free_bytes(void);                     /* free physical memory of the HRT */

/* Nested threads (paper III-D). In HRT context: start fn(arg) as a nested HRT thread of the caller:
 * ring 0 like it, in its execution group (the caller's partner serves the new thread's system
 * calls and page faults too, one event at a time, so getpid and gettid answer the caller's ids;
 * same FS base, so the same TLS), on a 1 MiB stack, on the next HRT vCPU in turn. Returns the new
 * thread's AeroKernel id (> 0). Join every nested thread: the caller's own thread does not end
 * before they have (its partner serves them). Native fallback: -HRT_ENOSYS (run fn yourself).
 * hrt_thread_join: wait for nested thread `id` to end and store fn's result in *result (if not
 * NULL); 0, -ESRCH (3) for an unknown id, -EINVAL (22) for a thread of another group. Native
 * fallback: -HRT_ENOSYS. */
long hrt_thread_create(void *(*fn)(void *), void *arg);
long hrt_thread_join(long id, void **result);

/* Where HRT code (ring 0 only) sees the physical page `pa`. */
static inline void *hrt_phys_to_virt(long pa)
{
    return (void *)(HRT_HIGH_BASE + (unsigned long)pa);
}

#ifdef __cplusplus
}
#endif

#endif
