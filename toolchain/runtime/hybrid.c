/* Split execution lands here: boot the AeroKernel embedded in the fat binary, merge the address
 * spaces and run main as an HRT thread with this thread as its partner. Until it does, this stub
 * says "not possible here" and mv_main runs main in the ROS. */
#include "runtime.h"

int mv_hybrid_main(const struct mv_config *cfg, int hvm_fd, int argc, char **argv, char **envp,
                   int *status)
{
    (void)cfg, (void)hvm_fd, (void)argc, (void)argv, (void)envp, (void)status;
    return -1;
}
