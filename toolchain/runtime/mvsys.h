/* Raw Linux system calls for the runtime (it runs before and beside libc, and uses none of it). */
#ifndef MV_SYS_H
#define MV_SYS_H

#define MV_SYS_mmap         9
#define MV_SYS_munmap       11
#define MV_SYS_rt_sigprocmask 14
#define MV_SYS_ioctl        16
#define MV_SYS_getpid       39
#define MV_SYS_exit         60
#define MV_SYS_kill         62
#define MV_SYS_gettid       186
#define MV_SYS_arch_prctl   158
#define MV_SYS_tgkill       234
#define MV_SYS_exit_group   231
#define MV_SYS_open         2
#define MV_SYS_close        3
#define MV_SYS_write        1

static inline long mv_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline long mv_syscall3(long nr, long a, long b, long c) { return mv_syscall6(nr, a, b, c, 0, 0, 0); }

#endif
