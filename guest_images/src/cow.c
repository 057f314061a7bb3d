/* Copy-on-write after fork: parent and child write the same pages, including pages that were only
   read (the zero page) before the fork; a child's writes never reach the parent and vice versa. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 64
static char bss[PAGES * 4096];            /* untouched until read: the zero page */

static unsigned long sum(const char *p, size_t n)
{
    unsigned long s = 0;
    for (size_t i = 0; i < n; i++)
        s += (unsigned char)p[i];
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    char *heap = malloc(PAGES * 4096);
    memset(heap, 'h', PAGES * 4096);
    char *anon = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("before fork: bss %lu anon %lu heap %lu\n", sum(bss, sizeof bss), sum(anon, PAGES * 4096),
           sum(heap, PAGES * 4096));
    pid_t p = fork();
    if (p == 0) {
        memset(bss, 'c', sizeof bss);
        memset(anon, 'c', PAGES * 4096);
        memset(heap, 'c', PAGES * 4096);
        strcpy(shared, "written by the child");
        printf("child: bss %lu anon %lu heap %lu\n", sum(bss, sizeof bss), sum(anon, PAGES * 4096),
               sum(heap, PAGES * 4096));
        _exit(0);
    }
    waitpid(p, NULL, 0);
    printf("parent after child: bss %lu anon %lu heap %lu shared \"%s\"\n", sum(bss, sizeof bss),
           sum(anon, PAGES * 4096), sum(heap, PAGES * 4096), shared);
    memset(bss, 'p', 4096);
    p = fork();
    if (p == 0) {
        printf("second child sees parent's write: %c\n", bss[0]);
        bss[1] = 'x';
        _exit(bss[1] == 'x' ? 0 : 1);
    }
    int st;
    waitpid(p, &st, 0);
    printf("parent bss[1] still %d, child status %d\n", bss[1], WEXITSTATUS(st));
    /* many forks: frames must be reclaimed */
    for (int i = 0; i < 50; i++) {
        p = fork();
        if (p == 0) {
            heap[i * 4096] = 'z';
            _exit(heap[i * 4096] == 'z' ? 0 : 1);
        }
        waitpid(p, &st, 0);
        if (WEXITSTATUS(st))
            printf("fork %d failed\n", i);
    }
    printf("heap page 0 still %c\n", heap[0]);
    return 0;
}
