/* Split execution: run main in the HRT, with this thread as its partner (split.c does the work;
 * here the fat binary's configuration is turned into its arguments). */
#include "runtime.h"
#include "split.h"

int mv_hybrid_main(const struct mv_config *cfg, int hvm_fd, int argc, char **argv, char **envp,
                   int *status)
{
    const void *image = (const char *)cfg + cfg->image_off;
    mv_main_fn main = (mv_main_fn)((unsigned long)cfg + cfg->main_off);
    return mv_split_main(hvm_fd, image, cfg->image_len, main, argc, argv, envp, status);
}
