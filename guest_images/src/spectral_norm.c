/* spectral_norm [N]: Benchmarks Game spectral-norm (plain scalar C). Power method on the
 * infinite matrix A(i,j) = 1/((i+j)(i+j+1)/2+i+1), truncated to N x N (default 100); prints
 * the spectral norm with 9 decimals. Reference: N=100 -> 1.274219991. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "common.h"

static double eval_A(int i, int j)
{
    return 1.0 / ((i + j) * (i + j + 1) / 2 + i + 1);
}

static void eval_A_times_u(int n, const double *u, double *Au)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += eval_A(i, j) * u[j];
        Au[i] = s;
    }
}

static void eval_At_times_u(int n, const double *u, double *Au)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += eval_A(j, i) * u[j];
        Au[i] = s;
    }
}

static void eval_AtA_times_u(int n, const double *u, double *AtAu, double *tmp)
{
    eval_A_times_u(n, u, tmp);
    eval_At_times_u(n, tmp, AtAu);
}

int main(int argc, char **argv)
{
    int n = (int)arg_long(argc, argv, 1, 100);
    double *u = malloc(n * sizeof(double)), *v = malloc(n * sizeof(double));
    double *tmp = malloc(n * sizeof(double));
    for (int i = 0; i < n; i++)
        u[i] = 1;
    for (int i = 0; i < 10; i++) {
        eval_AtA_times_u(n, u, v, tmp);
        eval_AtA_times_u(n, v, u, tmp);
    }
    double vBv = 0, vv = 0;
    for (int i = 0; i < n; i++) {
        vBv += u[i] * v[i];
        vv += v[i] * v[i];
    }
    printf("%0.9f\n", sqrt(vBv / vv));
    free(u);
    free(v);
    free(tmp);
    return 0;
}
