/* hrt_pthread_exit: threads that end with pthread_exit (with a cleanup handler pushed) and by
 * returning; main joins them and prints the values. Hybridized, the threads are HRT threads
 * (the pthread_create override) whose partners are the real pthreads. */
#include <pthread.h>
#include <stdio.h>

static void cleanup(void *what)
{
    printf("cleanup handler: %s\n", (const char *)what);
}

static void *thread(void *how)
{
    pthread_cleanup_push(cleanup, "ran");
    if (how)
        pthread_exit((void *)42);
    pthread_cleanup_pop(0);
    return (void *)7;
}

int main(void)
{
    pthread_t a, b;
    void *ra = 0, *rb = 0;
    pthread_create(&a, 0, thread, (void *)1);
    pthread_join(a, &ra);
    pthread_create(&b, 0, thread, 0);
    pthread_join(b, &rb);
    printf("pthread_exit value %ld, returned value %ld\n", (long)ra, (long)rb);
    return 0;
}
