/* crtfs tests - a C stdio client: copy lines from stdin to stdout with
 * fgets(3) on a FILE *, as C programs read a stream.
 *
 *     fgets-lines [N]
 *
 * With N, stop after N lines and fflush(stdin): glibc then seeks the file
 * descriptor back over what stdio read ahead, so that the next program
 * reading the same descriptor (`{ fgets-lines 3; cat; } < data`) starts
 * right after the last line taken. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long want = argc > 1 ? strtol(argv[1], NULL, 10) : -1;
    char line[80]; /* shorter than some lines: fgets returns them in parts */
    long lines = 0;

    while ((want < 0 || lines < want) && fgets(line, sizeof line, stdin)) {
        fputs(line, stdout);
        for (char *p = line; *p; p++)
            lines += *p == '\n';
    }
    if (ferror(stdin)) {
        perror("fgets-lines: read");
        return 1;
    }
    if (want >= 0 && fflush(stdin) != 0) {
        perror("fgets-lines: fflush(stdin)");
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
