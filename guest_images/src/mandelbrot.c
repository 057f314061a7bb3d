/* mandelbrot [N]: Benchmarks Game mandelbrot (plain scalar C). Writes an N x N (default 200)
 * 1-bit PBM image ("P4\nN N\n" + packed rows) of the Mandelbrot set to stdout: binary output,
 * compare it bytewise or by checksum. 50 iterations, escape radius 2. */
#include <stdio.h>
#include <stdlib.h>
#include "common.h"

int main(int argc, char **argv)
{
    int n = (int)arg_long(argc, argv, 1, 200);
    int row_bytes = (n + 7) / 8;
    unsigned char *row = malloc(row_bytes ? row_bytes : 1);
    printf("P4\n%d %d\n", n, n);
    for (int y = 0; y < n; y++) {
        double ci = 2.0 * y / n - 1.0;
        for (int xb = 0; xb < row_bytes; xb++) {
            unsigned bits = 0;
            for (int bit = 0; bit < 8; bit++) {
                int x = xb * 8 + bit;
                int inside = 0;
                if (x < n) {
                    double cr = 2.0 * x / n - 1.5;
                    double zr = 0, zi = 0, tr = 0, ti = 0;
                    int i;
                    for (i = 0; i < 50 && tr + ti <= 4.0; i++) {
                        zi = 2.0 * zr * zi + ci;
                        zr = tr - ti + cr;
                        tr = zr * zr;
                        ti = zi * zi;
                    }
                    inside = tr + ti <= 4.0;
                }
                bits = (bits << 1) | (unsigned)inside;
            }
            row[xb] = (unsigned char)bits;
        }
        fwrite(row, 1, row_bytes, stdout);
    }
    free(row);
    return 0;
}
