/*
 * util.c: what every subcommand module of the command shares: the usage
 * error line with its hint, and JSON string quoting. Linked by the program
 * and by the tests that run a subcommand without main.c.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "xl-migrate-live: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'xl-migrate-live --help' for more information.\n");
    return EXIT_USAGE;
}

void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}
