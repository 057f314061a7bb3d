/* Threads spread over the ROS vCPUs: N threads meet at a spin barrier (no system calls), then each
   says which CPU it is on (getcpu). Prints the CPUs the process may use and how many distinct
   CPUs the threads were on, and the online CPUs sysconf reports (glibc reads
   /sys/devices/system/cpu/online, musl asks sched_getaffinity). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int nthreads;
static volatile int arrived;
static int cpu_of[64];

static void *worker(void *arg) {
    int i = (int)(long)arg;
    __atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) < nthreads)
        ;
    cpu_of[i] = sched_getcpu();
    return NULL;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 4;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) { perror("sched_getaffinity"); return 1; }
    printf("cpus: %d, online: %ld\n", CPU_COUNT(&set), sysconf(_SC_NPROCESSORS_ONLN));
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(long)i);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    int seen = 0;
    for (int c = 0; c < 64; c++) {
        int hit = 0;
        for (int i = 0; i < nthreads; i++)
            hit |= cpu_of[i] == c;
        seen += hit;
    }
    printf("distinct cpus: %d\n", seen);
    return 0;
}
