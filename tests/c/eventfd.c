/* eventfd: the counter, semaphore mode, non-blocking and error cases, a blocking read woken by a
 * thread's write, a blocked write (counter full) woken by a read, and poll woken by a child. */
#include "testlib.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int efd;

static void nap(void) { struct timespec ts = {0, 20 * 1000 * 1000}; nanosleep(&ts, NULL); }

static void *writer(void *arg) {
    uint64_t v = (uint64_t)(long)arg;
    nap();
    write(efd, &v, 8);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    uint64_t v;
    nap();
    read(efd, &v, 8);
    return NULL;
}

int main(void) {
    uint64_t v = 0;
    int fd = eventfd(5, 0);
    CHECK("eventfd(5, 0)", fd >= 0 ? 0 : -1);
    v = 3; CHECK("write 3", write(fd, &v, 8));
    v = 0; CHECK("read", read(fd, &v, 8)); printf("value %llu\n", (unsigned long long)v);
    CHECK("fcntl F_GETFL & O_NONBLOCK", fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK("short read", read(fd, &v, 4));
    v = UINT64_MAX; CHECK("write UINT64_MAX", write(fd, &v, 8));
    CHECK("short write", write(fd, &v, 4));
    close(fd);

    fd = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK("fcntl F_GETFD", fcntl(fd, F_GETFD));
    CHECK("fcntl F_GETFL & O_NONBLOCK", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    for (int i = 0; i < 3; i++) {
        v = 0;
        CHECK("semaphore read", read(fd, &v, 8));
        printf("value %llu\n", (unsigned long long)v);
    }
    v = UINT64_MAX - 1; CHECK("write to the maximum", write(fd, &v, 8));
    v = 1; CHECK("write past the maximum (nonblock)", write(fd, &v, 8));
    close(fd);
    CHECK("eventfd2 bad flags", syscall(290, 0, 0x40));

    efd = eventfd(0, 0);
    pthread_t t;
    pthread_create(&t, NULL, writer, (void *)42L);
    v = 0;
    CHECK("blocking read woken by a thread", read(efd, &v, 8));
    printf("value %llu\n", (unsigned long long)v);
    pthread_join(t, NULL);

    v = UINT64_MAX - 1; write(efd, &v, 8);
    pthread_create(&t, NULL, reader, NULL);
    v = 7;
    CHECK("blocking write woken by a read", write(efd, &v, 8));
    pthread_join(t, NULL);
    CHECK("read", read(efd, &v, 8)); printf("value %llu\n", (unsigned long long)v);

    pid_t p = fork();
    if (p == 0) {
        nap();
        v = 9;
        write(efd, &v, 8);
        _exit(0);
    }
    struct pollfd pfd = {efd, POLLIN, 0};
    CHECK("poll woken by a child", poll(&pfd, 1, 5000));
    printf("revents %#x\n", pfd.revents);
    CHECK("read", read(efd, &v, 8)); printf("value %llu\n", (unsigned long long)v);
    int st;
    waitpid(p, &st, 0);
    printf("child status %d\n", st);
    return 0;
}
