/* hrt_spin_flag: one thread spins on a flag, with no system call in its loop, until another thread
 * sets it after some computation. Hybridized with one HRT vCPU, both are HRT threads of that vCPU:
 * the spinner must be preempted (the VMM's time-slice interrupt, docs/split.md) for the setter to
 * run at all. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int flag;

static void *spinner(void *arg)
{
    long spins = 0;
    (void)arg;
    while (!atomic_load_explicit(&flag, memory_order_acquire))
        spins++;
    return spins >= 0 ? (void *)1 : NULL;
}

static void *setter(void *arg)
{
    volatile double x = 0;
    (void)arg;
    for (int i = 0; i < 2000000; i++)
        x += i * 0.5;
    atomic_store_explicit(&flag, 1, memory_order_release);
    return NULL;
}

int main(void)
{
    pthread_t s, t;
    void *seen = NULL;
    pthread_create(&s, NULL, spinner, NULL);
    pthread_create(&t, NULL, setter, NULL);
    pthread_join(t, NULL);
    pthread_join(s, &seen);
    printf("the spinner saw the flag: %s\n", seen ? "yes" : "no");
    return 0;
}
