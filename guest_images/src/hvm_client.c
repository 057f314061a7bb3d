/* hvm_client IMAGE [selftest] [call ADDR ARG]...: a ROS program that uses the HVM the way the
 * Multiverse runtime will: open /dev/hvm, install an AeroKernel image, boot the HRT, run the
 * AeroKernel's self-tests and/or call functions on the HRT, printing each result. Natively (no
 * HVM) it says so and exits 2. */
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
#define HVM_IOC_STATE 0x4804
#define HVM_IOC_SELFTEST 0x4806
struct hvm_ioc_image { unsigned long addr, len; };
struct hvm_ioc_call { unsigned long func, arg, result; };

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
        }
    }
    return failures;
}
