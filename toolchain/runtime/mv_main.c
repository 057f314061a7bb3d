/* mv_main: the fat binary's main. `mvemu hybridize` rewrote _start so that __libc_start_main
 * calls this instead of the program's main (docs/hybridize.md).
 *
 * Under mvemu /dev/hvm exists and main may run in the HRT (hybrid.c). Anywhere else (plain Linux)
 * the open fails and the original main runs right here, so the fat binary behaves exactly like
 * the program it was made from. */
#include "runtime.h"
#include "syscall.h"

typedef int main_fn(int argc, char **argv, char **envp);

const struct mv_config mv_config __attribute__((section(".mv_config"), used)) = {
    .magic = MV_CONFIG_MAGIC,
    .version = MV_FAT_VERSION,
};

int mv_main(int argc, char **argv, char **envp)
{
    const struct mv_config *cfg = mv_config_get();
    main_fn *original_main = (main_fn *)((unsigned long)cfg + cfg->main_off);

    int fd = sys_open(HVM_ROS_DEVICE, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        int status;
        if (mv_hybrid_main(cfg, fd, argc, argv, envp, &status) == 0)
            return status;
        sys_close(fd);
    }
    return original_main(argc, argv, envp);
}
