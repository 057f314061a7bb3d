/* hrt_pthread_exit: threads that end with pthread_exit (with a cleanup handler pushed), by
 * returning, and by being cancelled at a cancellation point of their own (pthread_testcancel);
 * main joins them and prints the values. Hybridized, the threads are HRT threads (the
 * pthread_create override) whose partners are the real pthreads. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>

static sem_t started;

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

static void *cancelled(void *arg)
{
    (void)arg;
    pthread_cleanup_push(cleanup, "cancelled");
    sem_post(&started);
    for (;;)
        pthread_testcancel();
    pthread_cleanup_pop(0);
    return 0;
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

    pthread_t c;
    void *rc = 0;
    sem_init(&started, 0, 0);
    pthread_create(&c, 0, cancelled, 0);
    sem_wait(&started);
    pthread_cancel(c);
    pthread_join(c, &rc);
    printf("cancelled thread: %s\n", rc == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "still running?");
    return 0;
}
