/* Raw Linux system calls for the Multiverse runtime, which must not touch libc (not even errno):
 * a negative result is -errno. */
#ifndef MV_SYSCALL_H
#define MV_SYSCALL_H

#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_mmap 9
#define SYS_mprotect 10
#define SYS_munmap 11
#define SYS_ioctl 16
#define SYS_sched_yield 24
#define SYS_madvise 28
#define SYS_clone 56
#define SYS_getpid 39
#define SYS_exit 60
#define SYS_arch_prctl 158
#define SYS_gettid 186
#define SYS_exit_group 231
#define SYS_tgkill 234
#define SYS_clone3 435

#define O_RDWR 02
#define O_CLOEXEC 02000000

static inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline long raw_syscall3(long nr, long a1, long a2, long a3)
{
    return raw_syscall6(nr, a1, a2, a3, 0, 0, 0);
}

static inline int sys_open(const char *path, int flags)
{
    return (int)raw_syscall6(SYS_open, (long)path, flags, 0, 0, 0, 0);
}

static inline int sys_close(int fd)
{
    return (int)raw_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
}

#endif
