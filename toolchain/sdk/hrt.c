/* libmvhrt.a: the accelerator SDK's functions as they run outside the HRT (hrt.h). `mvemu
 * hybridize` redirects them in HRT context (toolchain/overrides.toml), so each body here is only
 * the native fallback. Each must stay a real function of at least 5 bytes with no branch in its
 * first 5 (the override's jump replaces them; the toolchain checks and refuses otherwise):
 * `noipa` keeps calls to it real calls that assume nothing about its registers. */
#include "hrt.h"
#include "hvm_abi.h"

_Static_assert(HRT_HIGH_BASE == HVM_HIGH_BASE, "hrt.h's HRT_HIGH_BASE is not hvm/abi.py's");

#define SDK __attribute__((noipa, used))
#define NATIVE_ENOSYS(name, ...) SDK long name(__VA_ARGS__) { return -HRT_ENOSYS; }

SDK void *hrt_invoke_func(void *(*fn)(void *), void *arg)
{
    return fn(arg);
}

SDK int hrt_cpl(void)
{
    unsigned long cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return (int)(cs & 3);
}

SDK int hrt_in_hrt(void)
{
    return hrt_cpl() == 0;
}

NATIVE_ENOSYS(hrt_read_cr0, void)
NATIVE_ENOSYS(hrt_read_cr3, void)
NATIVE_ENOSYS(hrt_read_cr4, void)
NATIVE_ENOSYS(hrt_cpu_id, void)
NATIVE_ENOSYS(hrt_thread_id, void)
NATIVE_ENOSYS(hrt_irq_disable, void)
NATIVE_ENOSYS(hrt_irq_restore, __attribute__((unused)) long was_on)
NATIVE_ENOSYS(hrt_irq_enabled, void)
NATIVE_ENOSYS(hrt_page_alloc, void)
NATIVE_ENOSYS(hrt_page_free, __attribute__((unused)) long pa)
NATIVE_ENOSYS(hrt_free_bytes, void)
NATIVE_ENOSYS(hrt_thread_create, __attribute__((unused)) void *(*fn)(void *), __attribute__((unused)) void *arg)
NATIVE_ENOSYS(hrt_thread_join, __attribute__((unused)) long id, __attribute__((unused)) void **result)
