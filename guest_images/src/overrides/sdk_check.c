/* Every call of the accelerator SDK (toolchain/sdk/hrt.h), from a function started with
 * hrt_invoke_func(). Each line is "name: value"; a call that is not possible outside the HRT says
 * "unavailable (ENOSYS)", so a native run prints the same lines with other values and the tests
 * compare the two (tests/test_overrides.py).
 *
 * usage: sdk_check [N]   (N: what the function returns, echoed by main) */
#include <stdio.h>
#include <stdlib.h>
#include "hrt.h"

static void show(const char *name, long v, const char *what)
{
    if (v == -HRT_ENOSYS)
        printf("%s: unavailable (ENOSYS)\n", name);
    else
        printf("%s: %s\n", name, what);
}

static const char *yes(int c) { return c ? "yes" : "no"; }

static long main_thread;

static void *checks(void *arg)
{
    printf("cpl: %d\n", hrt_cpl());
    printf("in the HRT: %s\n", yes(hrt_in_hrt()));

    long cr0 = hrt_read_cr0();
    char buf[160];
    snprintf(buf, sizeof buf, "PE %s, WP %s, PG %s", yes(cr0 & 1), yes((cr0 >> 16) & 1), yes((cr0 >> 31) & 1));
    show("cr0", cr0, buf);

    long cr3 = hrt_read_cr3();
    show("cr3 page-aligned and not 0", cr3, yes(cr3 > 0 && (cr3 & 0xfff) == 0));
    long cr4 = hrt_read_cr4();
    show("cr4.PAE", cr4, yes((cr4 >> 5) & 1));

    long cpu = hrt_cpu_id();
    snprintf(buf, sizeof buf, "%ld", cpu);
    show("cpu id", cpu, buf);

    long tid = hrt_thread_id();
    show("in another thread than main", tid, yes(tid != main_thread));

    long was_on = hrt_irq_disable();
    long off = hrt_irq_enabled();
    long before = hrt_irq_restore(was_on);
    long after = hrt_irq_enabled();
    snprintf(buf, sizeof buf, "off %s, restored %s", yes(off == 0 && before == 0), yes(after == was_on));
    show("interrupts", was_on, buf);

    long free_before = hrt_free_bytes();
    long pa = hrt_page_alloc();
    if (pa > 0) {
        volatile unsigned long *page = hrt_phys_to_virt(pa);
        int zeroed = page[0] == 0 && page[511] == 0;
        page[0] = 0x1234abcd;
        int kept = page[0] == 0x1234abcd;
        long free_during = hrt_free_bytes();
        long freed = hrt_page_free(pa);
        snprintf(buf, sizeof buf, "page-aligned %s, zeroed %s, writable %s, freed %s, free memory 4 KiB less "
                 "meanwhile %s", yes((pa & 0xfff) == 0), yes(zeroed), yes(kept), yes(freed == 0),
                 yes(free_during == free_before - 4096 && hrt_free_bytes() == free_before));
        show("physical page", pa, buf);
    } else {
        show("physical page", pa, "allocation failed");
    }
    return arg;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], 0, 0) : 42;
    main_thread = hrt_thread_id();
    void *r = hrt_invoke_func(checks, (void *)n);
    printf("hrt_invoke_func returned %ld\n", (long)r);
    return 0;
}
