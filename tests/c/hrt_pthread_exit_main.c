/* hrt_pthread_exit_main: the ways a thread ends early, beyond tests/c/hrt_pthread_exit.c: a
 * detached thread that calls pthread_exit (its thread-specific data destructor runs; musl unmaps
 * the thread's own stack), and main calling pthread_exit while another thread still runs, which
 * then ends the process with exit(3). Hybridized, every thread here is an HRT thread, main's
 * partner is the main ROS thread, and glibc runs start_thread's (or __libc_start_call_main's) tail
 * on the partner's original stack. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static sem_t gone;
static pthread_key_t key;

static void cleanup(void *what)
{
    printf("cleanup handler: %s\n", (const char *)what);
}

static void destructor(void *what)
{
    printf("key destructor: %s\n", (const char *)what);
    sem_post(&gone);
}

static void *detached(void *arg)
{
    pthread_setspecific(key, "detached thread");
    pthread_cleanup_push(cleanup, "detached thread");
    pthread_exit(arg);
    pthread_cleanup_pop(0);
    return 0;
}

static void *outlives_main(void *arg)
{
    (void)arg;
    sem_wait(&gone);                        /* main's destructor ran: main is in pthread_exit */
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, 0);
    printf("main has exited; this thread ends the process\n");
    exit(3);
}

int main(void)
{
    sem_init(&gone, 0, 0);
    pthread_key_create(&key, destructor);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 3; i++) {
        pthread_t d;
        if (pthread_create(&d, &attr, detached, 0) != 0)
            return 1;
        sem_wait(&gone);
    }

    pthread_t t;
    if (pthread_create(&t, 0, outlives_main, 0) != 0)
        return 1;
    pthread_setspecific(key, "main");
    printf("main calls pthread_exit\n");
    pthread_exit(0);
}
