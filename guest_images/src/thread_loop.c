/* thread_loop [N]: micro-benchmark of the thread life cycle: N times pthread_create a thread
 * that returns its argument plus one, then pthread_join it (default N 100); prints N and the
 * sum of the results. Hybridized with the default overrides, every thread is an HRT thread. */
#include <pthread.h>
#include <stdio.h>
#include "common.h"

static void *plus_one(void *arg)
{
    return (void *)((long)arg + 1);
}

int main(int argc, char **argv)
{
    long n = arg_long(argc, argv, 1, 100), sum = 0;
    for (long i = 0; i < n; i++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, NULL, plus_one, (void *)i) != 0 || pthread_join(t, &r) != 0) {
            printf("thread_loop: create/join failed at %ld\n", i);
            return 1;
        }
        sum += (long)r;
    }
    printf("%ld %ld\n", n, sum);
    return 0;
}
