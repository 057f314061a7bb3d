/* startup: what a new process finds: the auxiliary vector, the environment, signal state, limits,
 * the working directory and /proc/self/exe. Path outputs are deterministic because the harness runs
 * both runs in the same directory with the same argv[0]. */
#include "testlib.h"

#include <elf.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

static int fcntl_ok(int fd) { return fcntl(fd, F_GETFD) >= 0; }

extern char **environ;
extern const Elf64_Ehdr __ehdr_start;
extern void _start(void);

int main(int argc, char **argv)
{
    const Elf64_Ehdr *eh = &__ehdr_start;
    printf("argc %d argv[0] %s\n", argc, argv[0]);
    int envc = 0;
    for (char **e = environ; *e; e++)
        envc++;
    printf("environment entries %d, argv/envp contiguous %s\n", envc,
           argv + argc + 1 == environ ? "yes" : "no");
    OK("AT_PAGESZ == 4096", getauxval(AT_PAGESZ) == 4096);
    OK("AT_PHENT == sizeof(Elf64_Phdr)", getauxval(AT_PHENT) == sizeof(Elf64_Phdr));
    OK("AT_PHNUM == e_phnum", getauxval(AT_PHNUM) == eh->e_phnum);
    OK("AT_PHDR == image base + e_phoff", getauxval(AT_PHDR) == (unsigned long)eh + eh->e_phoff);
    OK("AT_ENTRY == &_start", getauxval(AT_ENTRY) == (unsigned long)&_start);
    OK("AT_UID/EUID/GID/EGID", getauxval(AT_UID) == getuid() && getauxval(AT_EUID) == geteuid() &&
                               getauxval(AT_GID) == getgid() && getauxval(AT_EGID) == getegid());
    OK("AT_SECURE == 0", getauxval(AT_SECURE) == 0);
    OK("AT_CLKTCK == 100", getauxval(AT_CLKTCK) == 100);
    OK("AT_RANDOM points to 16 readable bytes", getauxval(AT_RANDOM) != 0 &&
                                                 ((unsigned char *)getauxval(AT_RANDOM))[15] + 1 > 0);
    const char *platform = (const char *)getauxval(AT_PLATFORM);
    printf("AT_PLATFORM %s\n", platform ? platform : "(none)");
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    OK("AT_EXECFN == argv[0]", execfn && strcmp(execfn, argv[0]) == 0);
    OK("stack pointer of main is 16-byte aligned", ((unsigned long)__builtin_frame_address(0) & 15) == 0);

    sigset_t set;
    sigprocmask(SIG_BLOCK, NULL, &set);
    int blocked = 0, custom = 0;
    for (int s = 1; s < 32; s++) {
        struct sigaction sa;
        blocked += sigismember(&set, s) == 1;
        if (s != SIGKILL && s != SIGSTOP && sigaction(s, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
            custom++;
    }
    printf("blocked signals %d, non-default dispositions %d\n", blocked, custom);

    struct rlimit rl;
    getrlimit(RLIMIT_STACK, &rl);
    printf("RLIMIT_STACK soft %s\n", rl.rlim_cur == RLIM_INFINITY ? "unlimited" :
                                     rl.rlim_cur >= (8UL << 20) ? ">= 8 MiB" : "small");
    getrlimit(RLIMIT_NOFILE, &rl);
    OK("RLIMIT_NOFILE soft >= 64", rl.rlim_cur >= 64);

    char cwd[PATH_MAX], exe[PATH_MAX], real[PATH_MAX];
    printf("getcwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : ename(errno));
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    OK("/proc/self/exe == realpath(argv[0])", n > 0 && realpath(argv[0], real) && strcmp(exe, real) == 0);
    printf("umask %03o\n", umask(022));
    printf("fds 0/1/2 open %d%d%d, fd 3 open %d\n", fcntl_ok(0), fcntl_ok(1), fcntl_ok(2), fcntl_ok(3));
    return 0;
}
