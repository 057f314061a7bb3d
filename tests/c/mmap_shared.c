/* mmap_shared MODE: MAP_SHARED file mappings (run in an empty scratch directory).
 *   basic      a read-write shared mapping reaches the file, also from a forked child; a read-only
 *              mapping of an O_RDONLY fd stays in place until exit (nothing may be written through it)
 *   coherence  two mappings of the same file (through different fds) see each other's writes
 *   mprotect   PROT_WRITE on a shared mapping of an O_RDONLY fd: EACCES */
#include "testlib.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096

static char *map_ro(void)
{
    int ro = open("data.bin", O_RDONLY);
    char *r = mmap(NULL, 3 * PG, PROT_READ, MAP_SHARED, ro, 0);
    close(ro);
    OK("mmap MAP_SHARED PROT_READ on O_RDONLY fd", r != MAP_FAILED);
    OK("contents", r[0] == '0' && r[PG + 7] == '7');
    return r;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "basic";
    char buf[16] = { 0 };
    int fd = open("data.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    for (int i = 0; i < 3 * PG; i += 8)
        write(fd, "01234567", 8);
    close(fd);

    if (!strcmp(mode, "mprotect")) {
        char *r = map_ro();
        errno = 0;
        int rc = mprotect(r, PG, PROT_READ | PROT_WRITE);
        printf("%-44s %d %s\n", "mprotect PROT_WRITE", rc, ename(errno));
        return 0;
    }
    if (!strcmp(mode, "coherence")) {
        char *r = map_ro();
        int rw = open("data.bin", O_RDWR);
        char *w = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, rw, PG);
        memcpy(w, "written!", 8);
        OK("the other mapping sees the write", memcmp(r + PG, "written!", 8) == 0);
        pwrite(rw, "pwritten", 8, 2 * PG);
        OK("both mappings see a pwrite", memcmp(r + 2 * PG, "pwritten", 8) == 0 &&
                                         memcmp(w + PG, "pwritten", 8) == 0);
        return 0;
    }
    char *r = map_ro();
    int rw = open("data.bin", O_RDWR);
    char *w = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, rw, PG);
    OK("mmap MAP_SHARED PROT_WRITE at offset 4096", w != MAP_FAILED);
    memcpy(w, "written!", 8);
    pid_t p = fork();
    if (p == 0) {
        memcpy(w + PG, "by child", 8);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    OK("child's write to the shared mapping is visible", memcmp(w + PG, "by child", 8) == 0);
    OK("msync", msync(w, 2 * PG, MS_SYNC) == 0);
    pread(rw, buf, 8, PG);
    OK("parent's write is in the file", memcmp(buf, "written!", 8) == 0);
    pread(rw, buf, 8, 2 * PG);
    OK("child's write is in the file", memcmp(buf, "by child", 8) == 0);
    munmap(w, 2 * PG);
    OK("read-only mapping still readable", r[0] == '0');
    return 0;      /* exit with the read-only mapping still in place */
}
