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
 *   thread exit main() returned: hand its status to __libc_start_main; it called SYS_exit (or
 *               glibc's pthread_exit, which ends so): end this ROS thread with it */
#include "split.h"
#include "syscall.h"

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_NONE 0
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_NORESERVE 0x4000
#define MAP_STACK 0x20000
#define ARCH_GET_FS 0x1003
#define EINTR 4
#define ENOMEM 12
#define CLONE_VM 0x100
#define MADV_POPULATE_WRITE 23

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

static void unmap(void *p, unsigned long size)
{
    if (p)
        raw_syscall3(SYS_munmap, (long)p, size, 0);
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

/* Replicate an HRT page fault here, so that the ROS pages the address in (or breaks copy-on-write).
 * A write is replicated with MADV_POPULATE_WRITE: a write that leaves the byte as it is would read
 * it first, and that read alone would map the zero page, which the write then replaces (two ROS
 * faults and a TLB shootdown instead of one fault). If the ROS refuses (the access is not
 * allowed), the access itself is made: it fails here as it would have natively (SIGSEGV). */
static void replicate_access(unsigned long addr, unsigned long error)
{
    volatile unsigned char *p = (volatile unsigned char *)addr;
    if (error & 2) {
        if (raw_syscall3(SYS_madvise, (long)(addr & ~4095UL), 4096, MADV_POPULATE_WRITE) == 0)
            return;
        __asm__ volatile("lock orb $0, %0" : "+m"(*p) : : "memory");
    } else {
        (void)*p;
    }
}

/* Is this forwarded system call a clone whose child is a thread with a stack of its own (it shares
 * the record's memory, so the partner must wait until it has read its registers)? */
static int thread_clone(const struct hvm_event *ev)
{
    if (ev->nr == SYS_clone)
        return (ev->a0 & CLONE_VM) && ev->a1;
    if (ev->nr == SYS_clone3 && ev->a1 >= 56) {
        const unsigned long *args = (const unsigned long *)ev->a0;     /* struct clone_args */
        return (args[0] & CLONE_VM) && args[5];
    }
    return 0;
}

/* One top-level HRT thread and its partner (the calling ROS thread). The partner serves the
 * thread's events on a stack of its own, not on the ROS thread's stack: glibc ends a thread that
 * calls pthread_exit (or is cancelled) by unwinding it and longjmp'ing to the buffer start_thread
 * (or, for main, __libc_start_call_main) set up on the ROS thread's stack, and running their tail
 * there. In the HRT thread that tail then runs on the partner's original stack, which the partner
 * does not use meanwhile, and ends with SYS_exit: the partner then ends its ROS thread from its
 * own stack, never returning to the frames the tail overwrote. One mapping holds the thread's
 * channel and both stacks:
 *     [partner stack | guard page | HRT thread stack | event record page]                       */
#define PARTNER_STACK_SIZE (1UL << 20)      /* the partner loop, forwarded calls, signal handlers */
#define GUARD_SIZE 4096UL
#define HRT_STACK_TOP (PARTNER_STACK_SIZE + GUARD_SIZE + HRT_STACK_SIZE)
#define THREAD_MAP_SIZE (HRT_STACK_TOP + 4096UL)

struct partner {
    int fd;
    int own_fd;                             /* close fd when the thread's SYS_exit ends this one */
    int exit_with_thread;                   /* the thread's SYS_exit ends this ROS thread too */
    unsigned long fn, a0, a1, a2;
    char *map;                              /* the channel and the stacks (above) */
    long result;                            /* out: the thread's result */
};

static int partner_run(struct partner *p);

/* The partner loop, on the partner's stack: take each event the HRT thread posts, perform it
 * here and complete it, until the thread ends. Returns 0, or -1 if the HRT did not take the
 * thread. Works on a copy of *p: p lives on the ROS thread's stack, which the thread's own exit
 * path may overwrite. */
static long partner_loop(void *arg)
{
    struct partner me = *(struct partner *)arg;
    struct hvm_event *ev = (struct hvm_event *)(me.map + HRT_STACK_TOP);
    /* fn is entered as if called: the return address (the thread-exit trampoline) on top of a
     * 16-byte aligned stack. */
    unsigned long *sp = (unsigned long *)(me.map + HRT_STACK_TOP);
    *--sp = 0;
    *--sp = (unsigned long)mv_hrt_return;
    unsigned long fs_base = 0;
    raw_syscall3(SYS_arch_prctl, ARCH_GET_FS, (long)&fs_base, 0);
    struct hvm_ioc_thread th = {
        .func = me.fn, .arg0 = me.a0, .arg1 = me.a1, .arg2 = me.a2, .stack = (unsigned long)sp,
        .fs_base = fs_base, .channel = (unsigned long)ev, .cpu = ~0UL,
    };
    if (hvm_ioctl(me.fd, HVM_IOC_CREATE_THREAD, (long)&th) < 0)
        return -1;

    unsigned long cmd = HVM_IOC_WAIT_EVENT;
    for (;;) {
        long kind = hvm_ioctl(me.fd, cmd, (long)ev);
        if (kind == -EINTR)
            continue;                       /* a signal handler ran here; wait on */
        if (kind < 0)
            raw_syscall3(SYS_exit_group, 127, 0, 0);   /* the channel is gone: cannot go on */
        cmd = HVM_IOC_COMPLETE_WAIT;
        switch (kind) {
        case HVM_EVENT_SYSCALL:
            if (ev->nr == HVM_HRT_SYS_INVOKE) {         /* fn(arg) in another HRT thread */
                struct partner inv = { .fd = me.fd, .fn = ev->a0, .a0 = ev->a1 };
                ev->result = partner_run(&inv) == 0 ? inv.result : -ENOMEM;
                break;
            }
            ev->child_ready = 0;
            ev->result = mv_forward_syscall(ev);
            if ((long)ev->result > 0 && thread_clone(ev))
                while (!ev->child_ready)
                    raw_syscall3(SYS_sched_yield, 0, 0, 0);
            break;
        case HVM_EVENT_PAGE_FAULT:
            replicate_access(ev->addr, ev->error);
            break;
        case HVM_EVENT_EXCEPTION:
            raw_syscall3(SYS_tgkill, raw_syscall3(SYS_getpid, 0, 0, 0),
                        raw_syscall3(SYS_gettid, 0, 0, 0), vector_signal(ev->vector));
            break;
        case HVM_EVENT_THREAD_EXIT: {
            long result = (long)ev->result;
            int raw = ev->a0 != 0;          /* SYS_exit: no atexit handlers, no thread clean-up */
            if (raw && me.exit_with_thread) {
                if (me.own_fd)
                    sys_close(me.fd);
                mv_unmap_and_exit(me.map, THREAD_MAP_SIZE, result);     /* does not return */
            }
            ((struct partner *)arg)->result = result;
            return 0;
        }
        default:
            ev->result = -38;               /* -ENOSYS: an event kind this runtime does not know */
        }
    }
}

/* Start p->fn(p->a0, p->a1, p->a2) as a top-level HRT thread whose partner is the calling ROS
 * thread, with this thread's FS base superposed (TLS, errno and stdio locks work unmodified) and
 * a channel of its own, and serve its events until it ends. Returns 0 with the thread's result in
 * p->result, or -1 if nothing was started. If
 * p->exit_with_thread, a thread that ends with SYS_exit ends this ROS thread too, with its status:
 * then this does not return. */
static int partner_run(struct partner *p)
{
    long done = -1;
    p->map = map_anon(THREAD_MAP_SIZE, MAP_NORESERVE | MAP_STACK);
    if (!p->map)
        return -1;
    struct hvm_event *ev = (struct hvm_event *)(p->map + HRT_STACK_TOP);
    ev->state = HVM_EVENT_FREE;             /* touch it: the HRT must never fault on the channel */
    if (raw_syscall3(SYS_mprotect, (long)p->map + PARTNER_STACK_SIZE, GUARD_SIZE, PROT_NONE) == 0)
        done = mv_call_on_stack(p, partner_loop, p->map + PARTNER_STACK_SIZE);
    unmap(p->map, THREAD_MAP_SIZE);
    return (int)done;
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
    /* main's thread may end with SYS_exit (a raw exit, or glibc's pthread_exit in main when other
     * threads remain): then so does this, the main ROS thread, as natively. */
    struct partner p = { .fd = fd, .exit_with_thread = 1, .fn = (unsigned long)main,
                         .a0 = (unsigned long)argc, .a1 = (unsigned long)argv,
                         .a2 = (unsigned long)envp };
    if (partner_run(&p) < 0) {
        hvm_ioctl(fd, HVM_IOC_RESET, 0);
        return -1;
    }
    *status = (int)p.result;
    return 0;
}

/* pthread_create in HRT context (the default override, toolchain/overrides.toml). The thread is
 * made by the program's own pthread_create (`orig`, run here in the HRT: its mmap and clone are
 * forwarded), so it is a real ROS thread with glibc's or musl's bookkeeping; only its start routine
 * is replaced: mv_partner_start, which makes it the partner of a new top-level HRT thread running
 * fn(arg). pthread_join, pthread_detach and the thread's exit then work unmodified on the ROS
 * thread, which does not end before its HRT thread (paper IV-B, "join semantics"). */
struct start_block {
    unsigned long fn, arg;
};

typedef int pthread_create_fn(void *t, const void *attr, void *(*start)(void *), void *arg);

static void *mv_partner_start(void *start)
{
    struct start_block *b = start;
    unsigned long fn = b->fn, arg = b->arg;
    unmap(b, 4096);
    int fd = sys_open(HVM_ROS_DEVICE, O_RDWR | O_CLOEXEC);
    /* The HRT thread may end with SYS_exit (pthread_exit: glibc's after running start_thread's
     * tail, musl's after its own clean-up): then so does this ROS thread. */
    struct partner p = { .fd = fd, .own_fd = 1, .exit_with_thread = 1, .fn = fn, .a0 = arg };
    if (fd < 0 || partner_run(&p) < 0) {
        if (fd >= 0)
            sys_close(fd);
        return ((void *(*)(void *))fn)((void *)arg);    /* no HRT thread to be had: run it here */
    }
    sys_close(fd);
    return (void *)p.result;
}

int mv_pthread_create(void *t, const void *attr, void *(*fn)(void *), void *arg, void *orig)
{
    struct start_block *b = map_anon(4096, 0);
    if (!b)
        return 11;                          /* EAGAIN, as pthread_create reports it */
    b->fn = (unsigned long)fn;
    b->arg = (unsigned long)arg;
    int err = ((pthread_create_fn *)orig)(t, attr, mv_partner_start, b);
    if (err)
        unmap(b, 4096);
    return err;
}
