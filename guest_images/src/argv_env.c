/* argv_env: prints argc, every argv[i], and the value of each environment variable named
 * by argv[1..] (or "(unset)"). Exit status is argc. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (int i = 1; i < argc; i++) {
        const char *v = getenv(argv[i]);
        printf("env %s=%s\n", argv[i], v ? v : "(unset)");
    }
    return argc;
}
