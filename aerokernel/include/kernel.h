/* Common kernel declarations: console, panic, string functions, errno. */
#ifndef AK_KERNEL_H
#define AK_KERNEL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define EPERM   1
#define ENOENT  2
#define ESRCH   3
#define EAGAIN  11
#define EFAULT  14
#define EEXIST  17
#define EINVAL  22
#define ENOMEM  12
#define ENOSYS  38

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* console.c */
long console_write(const char *s, unsigned long n);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* lib.c (the compiler may call these even in freestanding code) */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);


/* selftest.c */
int selftest_run(void);                      /* returns the number of failures */

/* exports.c: AeroKernel functions exported to programs (looked up in the ELF symbol table) */
long aerokernel_add(long x);
long aerokernel_read_cr0(long unused);

#endif
