/* Why the HRT runs with CR0.WP set (DESIGN.md section 1, docs/split.md "CR0.WP").
 *
 * Hybridized, this program's main() runs in ring 0. Two writes here land on pages the ROS has
 * mapped read-only because they are shared: the zero page (anonymous memory that was only read)
 * and a copy-on-write page after fork. With CR0.WP set, a ring-0 write to a read-only page
 * faults like a ring-3 write, the fault is forwarded, and the ROS gives this process its own copy:
 * the output is the native one. `mvemu run --hrt-wp off` clears CR0.WP: the writes go straight
 * into the shared frames, so pages this program never wrote, pages mapped later, and the forked
 * child's memory all change. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static char note[4096] __attribute__((aligned(4096)));

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    volatile char *a = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile char *b = a + 4096;
    int before = a[0] + b[0];               /* both pages now map the shared zero page */
    a[0] = 'W';
    char *later = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("zero page: read %d, then wrote %d to one page; a page only read holds %d, a page "
           "mapped later holds %d\n", before, a[0], b[0], later[0]);
    b[0] = 0;       /* without WP this puts the shared zero page back as it was; with WP, a copy */

    strcpy(note, "original");               /* a private page of ours, shared copy-on-write after fork */
    int go[2];
    if (pipe(go) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        printf("fork: the child sees \"%s\"\n", note);
        _exit(0);
    }
    strcpy(note, "written by the parent after fork");
    if (write(go[1], "x", 1) != 1)
        return 1;
    int status;
    waitpid(pid, &status, 0);
    printf("fork: the parent sees \"%s\"; child status %d\n", note, status);
    return 0;
}
