/*
 * util.c: what every subcommand module of the command shares: the usage
 * error line with its hint, JSON string quoting, and the serving commands'
 * stop pipe. Linked by the program
 * and by the tests that run a subcommand without main.c.
 */
#include <config.h>

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

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

/* The serving commands' stop: SIGINT/SIGTERM write a byte the server polls
 * (async-signal-safe), SIGPIPE is ignored. One server per process. */
static int stop_wfd = -1;

static void on_stop(int sig)
{
    (void)sig;
    ssize_t w = write(stop_wfd, "x", 1);
    (void)w;
}

int cli_stop_pipe_open(int fds[2])
{
    struct sigaction sa = {.sa_handler = on_stop};
    if (pipe2(fds, O_CLOEXEC) < 0) {
        perror("xl-migrate-live: pipe");
        return -1;
    }
    stop_wfd = fds[1];
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

void cli_stop_pipe_close(int fds[2])
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    stop_wfd = -1;
    close(fds[0]);
    close(fds[1]);
}
