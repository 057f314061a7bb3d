/* The paper's Fig. 5 (function overrides): Fig. 4 with pthread_create/pthread_join instead of
 * hrt_invoke_func. `mvemu hybridize`'s default overrides map pthread_create, called in the HRT, to
 * the runtime's mv_pthread_create: routine runs in a new HRT thread (its partner is a ROS thread
 * that pthread_join joins). Natively routine runs in an ordinary thread, where the AeroKernel call
 * says -ENOSYS. */
#include <pthread.h>
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
    pthread_t t;
    pthread_create(&t, NULL, routine, NULL);
    pthread_join(t, NULL);
    return 0;
}
