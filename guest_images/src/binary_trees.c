/* binary_trees [N]: Benchmarks Game binary-trees (plain C, malloc/free per node). Builds and
 * checks perfect binary trees up to depth N (default 10, minimum 6); prints the classic
 * stretch/iterations/long-lived report. Exercises the allocator heavily. */
#include <stdio.h>
#include <stdlib.h>
#include "common.h"

struct node {
    struct node *left, *right;
};

static struct node *bottom_up(int depth)
{
    struct node *n = malloc(sizeof *n);
    if (!n) {
        fprintf(stderr, "binary_trees: out of memory\n");
        exit(1);
    }
    if (depth > 0) {
        n->left = bottom_up(depth - 1);
        n->right = bottom_up(depth - 1);
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static long check(const struct node *n)
{
    return n->left ? 1 + check(n->left) + check(n->right) : 1;
}

static void delete_tree(struct node *n)
{
    if (n->left) {
        delete_tree(n->left);
        delete_tree(n->right);
    }
    free(n);
}

int main(int argc, char **argv)
{
    int n = (int)arg_long(argc, argv, 1, 10);
    int min_depth = 4;
    int max_depth = n < min_depth + 2 ? min_depth + 2 : n;
    int stretch = max_depth + 1;

    struct node *t = bottom_up(stretch);
    printf("stretch tree of depth %d\t check: %ld\n", stretch, check(t));
    delete_tree(t);

    struct node *long_lived = bottom_up(max_depth);
    for (int d = min_depth; d <= max_depth; d += 2) {
        long iterations = 1L << (max_depth - d + min_depth);
        long sum = 0;
        for (long i = 0; i < iterations; i++) {
            t = bottom_up(d);
            sum += check(t);
            delete_tree(t);
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, sum);
    }
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, check(long_lived));
    delete_tree(long_lived);
    return 0;
}
