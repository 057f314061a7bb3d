/* Split execution, the ROS side (see split.h).
 *
 * Start-up follows the paper's Fig. 6: install the AeroKernel image that travels inside the
 * program, boot it, merge this process's address space into the HRT, then start main() as a
 * top-level HRT thread on a stack allocated here, with this thread's FS base superposed (TLS,
 * errno and stdio locks work unmodified). This thread, the process's main thread, is the HRT
 * thread's partner: for main() no extra ROS thread is made, so getpid() == gettid() and signals
 * aimed at the main thread reach the partner, exactly as natively.
 *
 * The partner loop takes each event the HRT posts on the channel, performs it here in the ROS
 * and completes it:
 *   syscall     issue the same system call (mv_forward_syscall; a fork child continues the
 *               program right here, in the ROS, from the HRT thread's registers)
 *   page fault  replicate the access (read, or a write that changes nothing) so the ROS pages the
 *               address in or breaks copy-on-write; an access the ROS refuses kills us with
 *               SIGSEGV, as the original access would have natively
 *   exception   raise the signal Linux would have sent for it
 *   thread exit main() returned (or called SYS_exit): hand its status to __libc_start_main */
#include "split.h"
#include "syscall.h"

#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_NORESERVE 0x4000
#define MAP_STACK 0x20000
#define ARCH_GET_FS 0x1003
#define EINTR 4

#define HRT_STACK_SIZE (8UL << 20)          /* main()'s stack in the HRT: RLIMIT_STACK's default */

static long hvm_ioctl(int fd, unsigned long cmd, long arg)
{
    return raw_syscall3(SYS_ioctl, fd, cmd, arg);
}

static void *map_anon(unsigned long size, int flags)
{
    long p = raw_syscall6(SYS_mmap, 0, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    return p < 0 && p > -4096 ? 0 : (void *)p;
}

/* The signal Linux sends for an exception of user code (arch/x86/kernel/traps.c). */
static int vector_signal(unsigned long vector)
{
    switch (vector) {
    case 0: case 16: case 19: return 8;     /* #DE, #MF, #XM: SIGFPE */
    case 1: case 3: return 5;               /* #DB, #BP: SIGTRAP */
    case 6: return 4;                       /* #UD: SIGILL */
    case 17: return 7;                      /* #AC: SIGBUS */
    default: return 11;                     /* #GP, #PF, #SS, ...: SIGSEGV */
    }
}

static void replicate_access(unsigned long addr, unsigned long error)
{
    volatile unsigned char *p = (volatile unsigned char *)addr;
    if (error & 2)                          /* a write: one that leaves the byte as it is */
        __asm__ volatile("lock orb $0, %0" : "+m"(*p) : : "memory");
    else
        (void)*p;
}

int mv_split_main(int fd, const void *image, unsigned long image_len, mv_main_fn main,
                  int argc, char **argv, char **envp, int *status)
{
    struct hvm_ioc_image img = { (unsigned long)image, image_len };
    long state = hvm_ioctl(fd, HVM_IOC_STATE, 0);
    if (state < 0 || (state & 2))           /* no HRT here, or another program runs in it */
        return -1;
    if (hvm_ioctl(fd, HVM_IOC_INSTALL, (long)&img) < 0 || hvm_ioctl(fd, HVM_IOC_BOOT, 0) < 0
        || hvm_ioctl(fd, HVM_IOC_MERGE, 0) < 0) {
        hvm_ioctl(fd, HVM_IOC_RESET, 0);
        return -1;
    }

    struct hvm_event *ev = map_anon(4096, 0);
    char *stack = map_anon(HRT_STACK_SIZE, MAP_NORESERVE | MAP_STACK);
    if (!ev || !stack) {
        hvm_ioctl(fd, HVM_IOC_RESET, 0);
        return -1;
    }
    ev->state = HVM_EVENT_FREE;             /* touch it: the HRT must never fault on the channel */
    /* main() is entered as if called: the return address (the thread-exit trampoline) on top of
     * a 16-byte aligned stack. */
    unsigned long *sp = (unsigned long *)(stack + HRT_STACK_SIZE);
    *--sp = 0;
    *--sp = (unsigned long)mv_hrt_return;
    unsigned long fs_base = 0;
    raw_syscall3(SYS_arch_prctl, ARCH_GET_FS, (long)&fs_base, 0);
    struct hvm_ioc_thread th = {
        .func = (unsigned long)main, .arg0 = (unsigned long)argc, .arg1 = (unsigned long)argv,
        .arg2 = (unsigned long)envp, .stack = (unsigned long)sp, .fs_base = fs_base,
        .channel = (unsigned long)ev, .cpu = ~0UL,
    };
    if (hvm_ioctl(fd, HVM_IOC_CREATE_THREAD, (long)&th) < 0) {
        hvm_ioctl(fd, HVM_IOC_RESET, 0);
        return -1;
    }

    unsigned long cmd = HVM_IOC_WAIT_EVENT;
    for (;;) {
        long kind = hvm_ioctl(fd, cmd, (long)ev);
        if (kind == -EINTR)
            continue;                       /* a signal handler ran here; wait on */
        if (kind < 0)
            raw_syscall3(SYS_exit_group, 127, 0, 0);   /* the channel is gone: cannot go on */
        cmd = HVM_IOC_COMPLETE_WAIT;
        switch (kind) {
        case HVM_EVENT_SYSCALL:
            ev->result = mv_forward_syscall(ev);
            break;
        case HVM_EVENT_PAGE_FAULT:
            replicate_access(ev->addr, ev->error);
            break;
        case HVM_EVENT_EXCEPTION:
            raw_syscall3(SYS_tgkill, raw_syscall3(SYS_getpid, 0, 0, 0),
                        raw_syscall3(SYS_gettid, 0, 0, 0), vector_signal(ev->vector));
            break;
        case HVM_EVENT_THREAD_EXIT:
            if (ev->a0)                     /* SYS_exit: end now, no atexit handlers */
                raw_syscall3(SYS_exit_group, (long)ev->result, 0, 0);
            *status = (int)ev->result;
            return 0;
        default:
            ev->result = -38;               /* -ENOSYS: an event kind this runtime does not know */
        }
    }
}
