/* hello: the smallest guest. Prints a greeting and each argument on its own line. */
#include <stdio.h>

int main(int argc, char **argv)
{
    puts("Hello from mvemu guest");
    for (int i = 1; i < argc; i++)
        puts(argv[i]);
    return 0;
}
