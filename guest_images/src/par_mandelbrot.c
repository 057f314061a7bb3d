/* par_mandelbrot [THREADS] [N]: the mandelbrot benchmark (same arithmetic as mandelbrot.c:
 * N x N points, 50 iterations, escape radius 2) computed by THREADS pthreads (default 2;
 * N default 200), thread t taking rows t, t+THREADS, ... of a shared bitmap. Prints the size,
 * the number of points inside the set and a checksum of the bitmap, not the image: the output
 * does not depend on THREADS. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "common.h"

static int n, nthreads, row_bytes;
static unsigned char *bitmap;

static void *rows(void *arg)
{
    long t = (long)arg;
    for (int y = (int)t; y < n; y += nthreads) {
        double ci = 2.0 * y / n - 1.0;
        for (int xb = 0; xb < row_bytes; xb++) {
            unsigned bits = 0;
            for (int bit = 0; bit < 8; bit++) {
                int x = xb * 8 + bit, inside = 0;
                if (x < n) {
                    double cr = 2.0 * x / n - 1.5;
                    double zr = 0, zi = 0, tr = 0, ti = 0;
                    for (int i = 0; i < 50 && tr + ti <= 4.0; i++) {
                        zi = 2.0 * zr * zi + ci;
                        zr = tr - ti + cr;
                        tr = zr * zr;
                        ti = zi * zi;
                    }
                    inside = tr + ti <= 4.0;
                }
                bits = (bits << 1) | (unsigned)inside;
            }
            bitmap[(size_t)y * row_bytes + xb] = (unsigned char)bits;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = (int)arg_long(argc, argv, 1, 2);
    n = (int)arg_long(argc, argv, 2, 200);
    if (nthreads < 1 || nthreads > 64) {
        fprintf(stderr, "par_mandelbrot: THREADS must be 1..64\n");
        return 2;
    }
    row_bytes = (n + 7) / 8;
    bitmap = calloc((size_t)row_bytes * n + 1, 1);
    pthread_t tid[64];
    for (long t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, rows, (void *)t) != 0) {
            printf("par_mandelbrot: pthread_create failed\n");
            return 1;
        }
    for (int t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    unsigned long sum = 0, inside = 0;
    for (size_t i = 0; i < (size_t)row_bytes * n; i++) {
        sum = sum * 131 + bitmap[i];
        inside += (unsigned long)__builtin_popcount(bitmap[i]);
    }
    printf("%d %lu %lx\n", n, inside, sum);
    free(bitmap);
    return 0;
}
