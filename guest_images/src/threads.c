/* pthreads: mutex, condition variable, barrier, a parallel sum with C11 atomics, thread-local
   storage, many short threads joined, and a thread spinning on a flag another thread sets.
   Run with argument N (default 4) threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static int nthreads = 4;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter;
static int ready;
static pthread_barrier_t bar;
static atomic_long asum;
static _Thread_local int tls_id;
static atomic_int flag;

static void *mutex_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void *cond_waiter(void *arg)
{
    pthread_mutex_lock(&mu);
    while (!ready)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return arg;
}

static void *barrier_sum(void *arg)
{
    long id = (long)arg;
    tls_id = (int)id;
    pthread_barrier_wait(&bar);
    long local = 0;
    for (long i = id; i < 200000; i += nthreads)
        local += i;
    atomic_fetch_add(&asum, local);
    pthread_barrier_wait(&bar);
    return (void *)(long)(tls_id == id);
}

static void *tiny(void *arg) { return (void *)((long)arg * 2); }

static void *setter(void *arg)
{
    (void)arg;
    for (volatile int i = 0; i < 100000; i++)
        ;
    atomic_store(&flag, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = atoi(argv[1]);
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, mutex_worker, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("mutex counter %ld\n", counter);

    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, cond_waiter, (void *)(long)i);
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    long idsum = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        idsum += (long)r;
    }
    printf("condvar woke all: %ld\n", idsum);

    pthread_barrier_init(&bar, NULL, nthreads);
    int tls_ok = 1;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, barrier_sum, (void *)(long)i);
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        tls_ok &= (long)r == 1;
    }
    printf("parallel sum %ld, tls %s\n", (long)atomic_load(&asum), tls_ok ? "ok" : "broken");

    long total = 0;
    for (int round = 0; round < 25; round++) {
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, tiny, (void *)(long)i);
        for (int i = 0; i < 8; i++) {
            void *r;
            pthread_join(t[i], &r);
            total += (long)r;
        }
    }
    printf("200 short threads joined, total %ld\n", total);

    pthread_create(&t[0], NULL, setter, NULL);
    while (!atomic_load(&flag))
        ;
    pthread_join(t[0], NULL);
    printf("spin on flag: done\n");
    return 0;
}
