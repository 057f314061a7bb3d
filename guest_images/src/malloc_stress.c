/* malloc_stress [ROUNDS]: deterministic malloc/realloc/free/calloc stress with content checks.
 * A private LCG picks slots and sizes (1 byte .. 512 KiB, so large blocks come from mmap);
 * every block is filled with a pattern derived from its id and checked before it is freed or
 * after it is reallocated. Also grows and shrinks the heap with the raw brk system call.
 * Prints only counts and a checksum of block contents (never addresses). Default ROUNDS 1000. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

#define SLOTS 512

static uint64_t lcg_state = 0x2545F4914F6CDD1DULL;

static uint32_t rnd(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

struct block {
    unsigned char *p;
    size_t size;
    uint32_t id;
};

static struct block slots[SLOTS];
static uint64_t checksum = 0xcbf29ce484222325ULL;
static long n_malloc, n_realloc, n_free, n_calloc, n_large, errors;

static unsigned char pat(uint32_t id, size_t i)
{
    return (unsigned char)(id * 131u + i * 7u + (i >> 9));
}

static void fill(struct block *b, size_t from)
{
    for (size_t i = from; i < b->size; i++)
        b->p[i] = pat(b->id, i);
}

/* Verifies the first n bytes; folds a sample of them into the checksum. */
static void verify(const struct block *b, size_t n, const char *when)
{
    for (size_t i = 0; i < n; i++) {
        if (b->p[i] != pat(b->id, i)) {
            if (errors++ < 10)
                printf("corruption %s: block id %u size %zu at offset %zu\n", when, b->id, b->size, i);
            return;
        }
    }
    size_t step = n > 4096 ? 61 : 1;
    for (size_t i = 0; i < n; i += step)
        checksum = (checksum ^ b->p[i]) * 0x100000001b3ULL;
    checksum ^= n;
}

static size_t pick_size(void)
{
    uint32_t r = rnd() % 100;
    if (r < 60)
        return 1 + rnd() % 256;            /* small: tcache / fastbins */
    if (r < 90)
        return 257 + rnd() % 16384;        /* medium */
    if (r < 97)
        return 16384 + rnd() % 114688;     /* up to 128 KiB */
    n_large++;
    return 131073 + rnd() % (384u << 10);  /* > 128 KiB: mmap'd chunks */
}

static void brk_test(const char *when)
{
    long cur = syscall(SYS_brk, 0);
    long want = cur + (1L << 20) + 12345;  /* unaligned end on purpose */
    long got = syscall(SYS_brk, want);
    int ok = got == want;
    if (ok) {
        volatile unsigned char *p = (unsigned char *)cur;
        for (long i = 0; i < want - cur; i += 4096)
            p[i] = (unsigned char)i;
        p[want - cur - 1] = 0xAA;
        for (long i = 0; i < want - cur - 1 && ok; i += 4096)
            ok = p[i] == (unsigned char)i;
        ok = ok && p[want - cur - 1] == 0xAA;
    }
    long back = syscall(SYS_brk, cur);
    long again = syscall(SYS_brk, 0);
    printf("brk grow 1 MiB + touch + shrink (%s): %s\n", when, ok && back == cur && again == cur ? "ok" : "FAIL");
    if (!(ok && back == cur && again == cur))
        errors++;
}

int main(int argc, char **argv)
{
    long rounds = arg_long(argc, argv, 1, 1000);
    uint32_t next_id = 1;

    brk_test("before malloc");

    for (long r = 0; r < rounds; r++) {
        struct block *b = &slots[rnd() % SLOTS];
        uint32_t op = rnd() % 10;
        if (!b->p) {
            b->size = pick_size();
            b->id = next_id++;
            if (op < 2) {
                b->p = calloc(1, b->size);
                n_calloc++;
                if (!b->p) { printf("calloc(%zu) failed\n", b->size); return 1; }
                for (size_t i = 0; i < b->size; i++)
                    if (b->p[i]) {
                        if (errors++ < 10)
                            printf("calloc block not zeroed: size %zu offset %zu\n", b->size, i);
                        break;
                    }
            } else {
                b->p = malloc(b->size);
                n_malloc++;
                if (!b->p) { printf("malloc(%zu) failed\n", b->size); return 1; }
            }
            fill(b, 0);
        } else if (op < 4) {
            size_t ns = pick_size();
            size_t keep = ns < b->size ? ns : b->size;
            unsigned char *np = realloc(b->p, ns);
            n_realloc++;
            if (!np) { printf("realloc(%zu) failed\n", ns); return 1; }
            b->p = np;
            size_t old = b->size;
            b->size = ns;
            verify(b, keep, "after realloc");
            if (ns > old)
                fill(b, old);
        } else {
            verify(b, b->size, "before free");
            free(b->p);
            b->p = NULL;
            n_free++;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            verify(&slots[i], slots[i].size, "at end");
            free(slots[i].p);
            n_free++;
        }

    /* A few big calloc blocks must be zero even when memory is recycled. */
    for (int k = 0; k < 3; k++) {
        size_t sz = (size_t)(160 + 200 * k) << 10;
        unsigned char *p = malloc(sz);
        memset(p, 0xEE, sz);
        free(p);
        p = calloc(sz / 8, 8);
        size_t nz = 0;
        for (size_t i = 0; i < sz; i++)
            nz += p[i] != 0;
        printf("calloc %zu KiB after dirty free: %s\n", sz >> 10, nz ? "NOT ZERO" : "zeroed");
        errors += nz != 0;
        free(p);
    }

    brk_test("after malloc");

    printf("rounds %ld: malloc %ld calloc %ld realloc %ld free %ld large %ld\n",
           rounds, n_malloc, n_calloc, n_realloc, n_free, n_large);
    printf("checksum %016llx\n", (unsigned long long)checksum);
    printf("malloc_stress: %s\n", errors ? "FAILED" : "ok");
    return errors ? 1 : 0;
}
