/* hvm_client IMAGE [selftest] [call ADDR ARG]... [bench WHAT N [ADDR]]...: a ROS program that
 * uses the HVM the way the Multiverse runtime will: open /dev/hvm, install an AeroKernel image,
 * boot the HRT, run the AeroKernel's self-tests and/or call functions on the HRT, printing each
 * result. Natively (no HVM) it says so and exits 2.
 * `bench WHAT N` repeats one request N times and prints only how many succeeded, for
 * benchmarks/ (run with two N, the difference is the cost of N requests): `state` (the STATE
 * ioctl: a GET_STATE hypercall, the cheapest there is), `merge` (the MERGE ioctl),
 * `call N ADDR` (INVOKE_SYNC of ADDR(i), which must return non-negative), `reset` (RESET: stop
 * the HRT, clear its memory), `reboot N ADDR` (RESET, INSTALL, BOOT and one INVOKE_SYNC of
 * ADDR: the AeroKernel booted from scratch up to its first call), `async N ADDR` (INVOKE of
 * ADDR(i), not waited for; then an INVOKE_SYNC of ADDR(N), which returns after all of them, must
 * give what a second one gives). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define HVM_IOC_INSTALL 0x4801
#define HVM_IOC_BOOT 0x4802
#define HVM_IOC_INVOKE_SYNC 0x4803
#define HVM_IOC_INVOKE 0x480B
#define HVM_IOC_STATE 0x4804
#define HVM_IOC_RESET 0x4805
#define HVM_IOC_SELFTEST 0x4806
#define HVM_IOC_MERGE 0x4807
struct hvm_ioc_image { unsigned long addr, len; };
struct hvm_ioc_call { unsigned long func, arg, result; };

/* One repetition of `bench WHAT`: 1 if the request succeeded. */
static int bench_once(int hvm, const char *what, long i, unsigned long addr, struct hvm_ioc_image *img)
{
    if (!strcmp(what, "state"))
        return ioctl(hvm, HVM_IOC_STATE) >= 0;
    if (!strcmp(what, "merge"))
        return ioctl(hvm, HVM_IOC_MERGE) == 0;
    if (!strcmp(what, "reset"))
        return ioctl(hvm, HVM_IOC_RESET) == 0;
    struct hvm_ioc_call c = {addr, (unsigned long)i, 0};
    if (!strcmp(what, "call"))
        return ioctl(hvm, HVM_IOC_INVOKE_SYNC, &c) == 0 && (long)c.result >= 0;
    if (!strcmp(what, "async"))
        return ioctl(hvm, HVM_IOC_INVOKE, &c) == 0;
    if (!strcmp(what, "reboot"))
        return ioctl(hvm, HVM_IOC_RESET) == 0 && ioctl(hvm, HVM_IOC_INSTALL, img) == 0 &&
               ioctl(hvm, HVM_IOC_BOOT) == 0 && ioctl(hvm, HVM_IOC_INVOKE_SYNC, &c) == 0 &&
               (long)c.result >= 0;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hvm_client IMAGE [selftest] [call ADDR ARG]...\n");
        return 2;
    }
    int hvm = open("/dev/hvm", O_RDWR);
    if (hvm < 0) {
        printf("no HVM here (/dev/hvm: %s)\n", strerror(errno));
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(argv[1]);
        return 1;
    }
    char *image = malloc(st.st_size);
    if (read(fd, image, st.st_size) != st.st_size) {
        perror("read");
        return 1;
    }
    struct hvm_ioc_image img = {(unsigned long)image, (unsigned long)st.st_size};
    printf("state before: %d\n", ioctl(hvm, HVM_IOC_STATE));
    printf("install: %d\n", ioctl(hvm, HVM_IOC_INSTALL, &img));
    printf("boot: %d\n", ioctl(hvm, HVM_IOC_BOOT));
    printf("state after: %d\n", ioctl(hvm, HVM_IOC_STATE));
    int failures = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "selftest")) {
            int r = ioctl(hvm, HVM_IOC_SELFTEST);
            printf("selftest failures: %d\n", r);
            failures += r != 0;
        } else if (!strcmp(argv[i], "call") && i + 2 < argc) {
            struct hvm_ioc_call c = {strtoul(argv[i + 1], NULL, 0), strtoul(argv[i + 2], NULL, 0), 0};
            int r = ioctl(hvm, HVM_IOC_INVOKE_SYNC, &c);
            printf("call %s(%s): %d, result %#lx\n", argv[i + 1], argv[i + 2], r, c.result);
            failures += r != 0;
            i += 2;
        } else if (!strcmp(argv[i], "bench") && i + 2 < argc) {
            const char *what = argv[i + 1];
            long n = strtol(argv[i + 2], NULL, 0), ok = 0;
            int with_addr = !strcmp(what, "call") || !strcmp(what, "reboot") || !strcmp(what, "async");
            unsigned long addr = with_addr && i + 3 < argc ? strtoul(argv[i + 3], NULL, 0) : 0;
            for (long k = 0; k < n; k++) {
                int r = bench_once(hvm, what, k, addr, &img);
                if (r < 0) {
                    fprintf(stderr, "hvm_client: unknown bench '%s'\n", what);
                    return 2;
                }
                ok += r;
            }
            if (!strcmp(what, "async")) {
                /* The vCPU runs its calls in order: a synchronous ADDR(N) made now returns after all
                 * of them, with its own result (the same as a synchronous ADDR(N) made before). */
                struct hvm_ioc_call ref = {addr, (unsigned long)n, 0}, c = {addr, (unsigned long)n, 0};
                if (ioctl(hvm, HVM_IOC_INVOKE_SYNC, &c) != 0 || ioctl(hvm, HVM_IOC_INVOKE_SYNC, &ref) != 0 ||
                    c.result != ref.result)
                    ok = 0;
            }
            printf("bench %s: %ld of %ld ok\n", what, ok, n);
            failures += ok != n;
            i += 2 + with_addr;
        }
    }
    return failures;
}
