/* Helpers for the tests/c programs: print each check as one deterministic line (errno names, never
 * addresses or strerror texts), so that a native run and an mvemu run can be compared byte for byte. */
#ifndef TESTLIB_H
#define TESTLIB_H
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

__attribute__((unused)) static const char *ename(int e)
{
#define E(x) case x: return #x;
    switch (e) {
    case 0: return "0";
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF) E(ECHILD)
    E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
    E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS)
    E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE) E(EDEADLK) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY)
    E(ELOOP) E(EOVERFLOW) E(ENOTSOCK) E(EOPNOTSUPP) E(ETIMEDOUT) E(ENOTCONN)
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
#undef E
}

/* CHECK("label", expr): prints the value of expr, or -1 and the errno name if it is negative. */
#define CHECK(label, expr) do {                                                          \
        errno = 0;                                                                       \
        long r_ = (long)(expr);                                                          \
        if (r_ < 0) printf("%-44s -1 %s\n", label, ename(errno));                        \
        else printf("%-44s %ld\n", label, r_);                                           \
        fflush(stdout);                                                                  \
    } while (0)

/* OK("label", cond): prints ok or FAIL. */
#define OK(label, cond) do {                                                              \
        printf("%-44s %s\n", label, (cond) ? "ok" : "FAIL");                             \
        fflush(stdout);                                                                  \
    } while (0)

#endif
