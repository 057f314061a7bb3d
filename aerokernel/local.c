/* Subtractive porting (paper section III-B): system calls the AeroKernel serves itself instead of
 * forwarding them to the partner, as chosen with `mvemu run --hrt-local` (boot_info.local_syscalls).
 *
 *   getpid, gettid    the partner's process and thread ids, told at thread creation
 *   clock_gettime,    the host clock through the LOCAL_CLOCK hypercall (a paravirtual clock, as
 *   gettimeofday,     kvmclock is to Linux); the result is copied into the program's buffer by
 *   time              the AeroKernel itself (copy_to_user), with CR0.WP in force
 *   write             to fd 1 or 2 while they are mvemu's own stdout/stderr: the console device
 *                     (LOCAL_WRITE hypercall), no partner, no ROS vCPU
 *
 * Whatever the AeroKernel cannot finish here goes to the partner as before: a clock only the ROS
 * keeps (CPU time), a buffer not mapped yet or copy-on-write (the copy faults; the partner's call
 * pages it in, so the next one is local), a write to anything but the console. The program sees
 * the same results either way. */
#include "cpu.h"
#include "hypercall.h"
#include "kernel.h"
#include "events.h"
#include "memlayout.h"
#include "syscall.h"
#include "thread.h"

#define SYS_write           1
#define SYS_gettimeofday    96
#define SYS_gettid          186
#define SYS_time            201
#define SYS_clock_gettime   228
#define NSEC                1000000000L


static int user_range(unsigned long p, unsigned long n)
{
    return p && p < LOWER_HALF_END && n <= LOWER_HALF_END - p;
}

static long put_user(unsigned long dst, const void *src, unsigned long n)
{
    return user_range(dst, n) ? copy_to_user((void *)dst, src, n) : -EFAULT;
}

/* The host clock `clk` in nanoseconds, or < 0 if only the ROS can answer. */
static long clock_ns(unsigned long clk)
{
    return hvm_hypercall(HVM_HC_LOCAL_CLOCK, (long)(int)clk, 0, 0, 0);
}

/* Serve f's system call here if this AeroKernel was asked to and can; 1 if it did (f->rax holds
 * the result), 0 to forward it. */
int local_syscall(struct thread *t, struct syscall_frame *f)
{
    unsigned long mask = this_cpu()->boot->local_syscalls;
    unsigned long nr = f->rax;
    long r;
    if (!(mask & ~HVM_LOCAL_ACCOUNT) || !t->ros_pid)
        return 0;                           /* the default: everything forwarded */
    switch (nr) {
    case SYS_getpid:
        if (!(mask & HVM_LOCAL_GETPID))
            return 0;
        r = (long)t->ros_pid;
        break;
    case SYS_gettid:
        if (!(mask & HVM_LOCAL_GETTID))
            return 0;
        r = (long)t->ros_tid;
        break;
    case SYS_clock_gettime: {
        if (!(mask & HVM_LOCAL_CLOCK_GETTIME))
            return 0;
        long ns = clock_ns(f->rdi);
        if (ns < 0)
            return 0;
        long ts[2] = {ns / NSEC, ns % NSEC};
        if (put_user(f->rsi, ts, sizeof ts) < 0)
            return 0;
        r = 0;
        break;
    }
    case SYS_gettimeofday: {
        if (!(mask & HVM_LOCAL_GETTIMEOFDAY) || f->rsi)     /* a timezone: the ROS's business */
            return 0;
        long ns = clock_ns(0);
        long tv[2] = {ns / NSEC, ns % NSEC / 1000};
        if (ns < 0 || (f->rdi && put_user(f->rdi, tv, sizeof tv) < 0))
            return 0;
        r = 0;
        break;
    }
    case SYS_time: {
        if (!(mask & HVM_LOCAL_TIME))
            return 0;
        long ns = clock_ns(0);
        long sec = ns / NSEC;
        if (ns < 0 || (f->rdi && put_user(f->rdi, &sec, sizeof sec) < 0))
            return 0;
        r = sec;
        break;
    }
    case SYS_write:
        if (!(mask & HVM_LOCAL_WRITE) || (f->rdi != 1 && f->rdi != 2) || !user_range(f->rsi, f->rdx))
            return 0;
        r = hvm_hypercall(HVM_HC_LOCAL_WRITE, (long)f->rdi, (long)f->rsi, (long)f->rdx, (long)t->ros_pid);
        if (r == -EAGAIN)
            return 0;
        break;
    default:
        return 0;
    }
    f->rax = (unsigned long)r;
    if (mask & HVM_LOCAL_ACCOUNT)
        hvm_hypercall(HVM_HC_LOCAL_SYSCALL, (long)nr, r, (long)t->id, (long)f->rdi);
    return 1;
}
