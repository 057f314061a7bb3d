/* The paper's Fig. 4 (accelerator model), built against the accelerator SDK (toolchain/sdk/hrt.h):
 * main asks for routine() to run on the HRT, and routine calls an AeroKernel function directly and
 * then the ordinary printf (a system call forwarded to the ROS). The paper's aerokernel_func() is
 * hrt_read_cr0() here.
 *
 * Natively (or not hybridized) routine runs in place and the AeroKernel call says -ENOSYS;
 * hybridized and run under mvemu it runs in ring 0 and gets CR0. */
#include <stdio.h>
#include "hrt.h"

static void *routine(void *in)
{
    long ret = hrt_read_cr0();
    printf("Result = %#lx (CPL %d)\n", ret, hrt_cpl());
    return in;
}

int main(void)
{
    hrt_invoke_func(routine, NULL);
    return 0;
}
