/*
 * main.c: the xl-migrate-live command. Parses the command line and hands
 * each subcommand to its module. Until the engine lands, 'demo' prints the
 * migration it will run.
 *
 * Exit codes are fixed (documented in xl-migrate-live(1) and docs/):
 * 0 success, 1 failed (domain still on the source), 2 bad usage,
 * 3 incompatible, 4 cancelled, 5 in doubt, 6 locked.
 */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <libmig/mig.h>

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: xl-migrate-live [OPTIONS] DOMAIN HOST\n"
            "       xl-migrate-live demo\n"
            "\n"
            "Live-migrate a Xen domain (memory, local disks, network) to HOST.\n"
            "\n"
            "  -h, --help       show this help\n"
            "  -V, --version    show the version\n");
}

static int cmd_demo(void)
{
    printf("demo: would start two test-guest hosts on 127.0.0.1, create a 512 MiB test guest\n"
           "      under write load on the first, and live-migrate it to the second,\n"
           "      printing progress and a final report with the guest's own verification.\n"
           "      (the pre-copy engine and test-guest backend are not built yet)\n");
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("xl-migrate-live %s\n", PACKAGE_VERSION);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'xl-migrate-live --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc && strcmp(argv[optind], "demo") == 0)
        return cmd_demo();
    fprintf(stderr, "xl-migrate-live: missing DOMAIN and HOST\n"
                    "Try 'xl-migrate-live --help' for more information.\n");
    return EXIT_USAGE;
}
