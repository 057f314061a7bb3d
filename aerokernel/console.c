/* Console: bytes go to mvemu's stderr through HVM_HC_CONSOLE_WRITE (virtual address, length).
 * kprintf formats into a small buffer and writes whole lines where it can; a console lock keeps
 * the lines of different CPUs apart (the VMM assembles lines from all HRT vCPUs in one buffer).
 * The lock is recursive per CPU, so a fatal exception inside kprintf can still print. */
#include "cpu.h"
#include "hypercall.h"
#include "kernel.h"
#include "x86.h"

static volatile int console_locked;
static volatile int console_owner;         /* cpu id + 1 */

static int console_acquire(void)
{
    int me = this_cpu_id() + 1;
    if (me && console_owner == me)
        return 0;                           /* nested on this CPU: already ours */
    while (__atomic_exchange_n(&console_locked, 1, __ATOMIC_ACQUIRE))
        while (console_locked)
            cpu_relax();
    console_owner = me;
    return 1;
}

static void console_release(int acquired)
{
    if (!acquired)
        return;
    console_owner = 0;
    __atomic_store_n(&console_locked, 0, __ATOMIC_RELEASE);
}

long console_write(const char *s, unsigned long n)
{
    return hvm_hypercall(HVM_HC_CONSOLE_WRITE, (long)s, (long)n, 0, 0);
}

struct out {
    char buf[160];
    unsigned n;
};

static void out_flush(struct out *o)
{
    if (o->n)
        console_write(o->buf, o->n);
    o->n = 0;
}

static void out_char(struct out *o, char c)
{
    if (o->n == sizeof o->buf)
        out_flush(o);
    o->buf[o->n++] = c;
}

static void out_str(struct out *o, const char *s, int width, int left)
{
    int len = 0;
    while (s[len])
        len++;
    for (; !left && width > len; width--)
        out_char(o, ' ');
    while (*s)
        out_char(o, *s++);
    for (; left && width > len; width--)
        out_char(o, ' ');
}

static void out_num(struct out *o, unsigned long v, unsigned base, int neg, int width, int zero,
                    int left, const char *prefix)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    int plen = (neg ? 1 : 0) + (prefix ? 2 : 0);
    int pad = width - n - plen;
    if (!left && !zero)
        for (; pad > 0; pad--)
            out_char(o, ' ');
    if (neg)
        out_char(o, '-');
    if (prefix) {
        out_char(o, prefix[0]);
        out_char(o, prefix[1]);
    }
    if (!left && zero)
        for (; pad > 0; pad--)
            out_char(o, '0');
    while (n)
        out_char(o, tmp[--n]);
    if (left)
        for (; pad > 0; pad--)
            out_char(o, ' ');
}

/* %[-0#][width][l|ll|z](d i u x p s c %) */
static void format(struct out *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_char(o, *fmt);
            continue;
        }
        int left = 0, zero = 0, alt = 0, width = 0, lng = 0;
        for (;; fmt++) {
            if (fmt[1] == '-') left = 1;
            else if (fmt[1] == '0') zero = 1;
            else if (fmt[1] == '#') alt = 1;
            else break;
        }
        while (fmt[1] >= '0' && fmt[1] <= '9')
            width = width * 10 + (*++fmt - '0');
        while (fmt[1] == 'l' || fmt[1] == 'z') {
            fmt++;
            lng = 1;
        }
        switch (*++fmt) {
        case 'd': case 'i': {
            long v = lng ? va_arg(ap, long) : va_arg(ap, int);
            out_num(o, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, v < 0, width, zero, left, 0);
            break;
        }
        case 'u':
            out_num(o, lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, 0, width, zero, left, 0);
            break;
        case 'x':
            out_num(o, lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, 0, width, zero, left,
                    alt ? "0x" : 0);
            break;
        case 'p':
            out_num(o, (unsigned long)va_arg(ap, void *), 16, 0, width, zero, left, "0x");
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            out_str(o, s ? s : "(null)", width, left);
            break;
        }
        case 'c':
            out_char(o, (char)va_arg(ap, int));
            break;
        case '%':
            out_char(o, '%');
            break;
        case '\0':
            fmt--;                          /* a lone '%' at the end */
            break;
        default:
            out_char(o, '%');
            out_char(o, *fmt);
        }
    }
}

void kvprintf(const char *fmt, va_list ap)
{
    struct out o;
    o.n = 0;
    int got = console_acquire();
    format(&o, fmt, ap);
    out_flush(&o);
    console_release(got);
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

static void oprintf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format(o, fmt, ap);
    va_end(ap);
}

void panic(const char *fmt, ...)
{
    va_list ap;
    struct out o;
    o.n = 0;
    int got = console_acquire();
    oprintf(&o, "aerokernel: PANIC on cpu %d: ", this_cpu_id());
    va_start(ap, fmt);
    format(&o, fmt, ap);
    va_end(ap);
    out_char(&o, '\n');
    out_flush(&o);
    console_release(got);
    halt_forever();
}
