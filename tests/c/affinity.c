/* affinity: sched_setaffinity / sched_getaffinity on the CPUs the process may use (the host's
 * natively, the ROS vCPUs under mvemu: --ros-cpus N): pinning the calling thread moves it at once
 * (sched_getcpu), new threads and forked children inherit the mask, threads pinned one to each CPU
 * run there, and the errors. Prints nothing that depends on how many CPUs there are. */
#include "testlib.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static cpu_set_t all;
static int ncpu, first = -1, last = -1;

static int only(int cpu)
{
    cpu_set_t now;
    CPU_ZERO(&now);
    return sched_getaffinity(0, sizeof now, &now) == 0 && CPU_COUNT(&now) == 1 && CPU_ISSET(cpu, &now);
}

static void *inherits(void *arg)
{
    return (void *)(long)(only(*(int *)arg) && sched_getcpu() == *(int *)arg);
}

static volatile int arrived;
static int cpus[CPU_SETSIZE], seen[CPU_SETSIZE];

static void *pinned(void *arg)
{
    int i = (int)(long)arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[i], &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
        return NULL;
    __atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) < ncpu)
        ;
    seen[i] = sched_getcpu();
    return NULL;
}

int main(void)
{
    CHECK("getaffinity", sched_getaffinity(0, sizeof all, &all));
    ncpu = CPU_COUNT(&all);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            if (first < 0)
                first = c;
            last = c;
        }
    int k = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all))
            cpus[k++] = c;

    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    CHECK("pin to the last CPU", sched_setaffinity(0, sizeof one, &one));
    OK("  getaffinity says so", only(last));
    OK("  the thread is there at once", sched_getcpu() == last);
    pthread_t th;
    void *res = 0;
    pthread_create(&th, 0, inherits, &last);
    pthread_join(th, &res);
    OK("  a new thread inherits it", res == (void *)1L);
    pid_t pid = fork();
    if (pid == 0)
        _exit(only(last) && sched_getcpu() == last ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    OK("  a forked child inherits it", WIFEXITED(status) && WEXITSTATUS(status) == 0);

    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK("pin to the first CPU", sched_setaffinity(0, sizeof one, &one));
    OK("  the thread is there at once", sched_getcpu() == first && only(first));
    CHECK("through the raw call (tid)", syscall(SYS_sched_setaffinity, syscall(SYS_gettid), sizeof one, &one));
    CHECK("raw getaffinity: the mask's size", syscall(SYS_sched_getaffinity, 0, sizeof all, &one) > 0);

    cpu_set_t none;
    CPU_ZERO(&none);
    CHECK("an empty mask", sched_setaffinity(0, sizeof none, &none));
    cpu_set_t *far = CPU_ALLOC(4096);
    size_t farsize = CPU_ALLOC_SIZE(4096);
    CPU_ZERO_S(farsize, far);
    CPU_SET_S(4000, farsize, far);
    CHECK("only a CPU that is not there", sched_setaffinity(0, farsize, far));
    CPU_FREE(far);
    CHECK("getaffinity into 4 bytes", syscall(SYS_sched_getaffinity, 0, 4, &one));
    CHECK("setaffinity from a bad pointer", syscall(SYS_sched_setaffinity, 0, sizeof one, (void *)8));
    CHECK("getaffinity of no such thread", sched_getaffinity(0x7ffffff0, sizeof one, &one));
    CHECK("setaffinity of no such thread", sched_setaffinity(0x7ffffff0, sizeof one, &one));

    CHECK("back to every CPU", sched_setaffinity(0, sizeof all, &all));
    cpu_set_t now;
    sched_getaffinity(0, sizeof now, &now);
    OK("  getaffinity says so", CPU_EQUAL(&now, &all));

    pthread_t t[CPU_SETSIZE];
    for (int i = 0; i < ncpu; i++)
        pthread_create(&t[i], 0, pinned, (void *)(long)i);
    int right = 1;
    for (int i = 0; i < ncpu; i++) {
        pthread_join(t[i], 0);
        right &= seen[i] == cpus[i];
    }
    OK("threads pinned one to each CPU run there", right);
    return 0;
}
