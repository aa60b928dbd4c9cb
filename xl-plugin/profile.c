/*
 * profile.c: the 'profile' subcommand (docs/profiles.md):
 *   xl-migrate-live profile render NAME|FILE   the xl.cfg cpuid= that boots
 *                                              guests inside the baseline
 *                                              (for xl 4.17; XEN_VERSION=4.18
 *                                              in the environment: every name)
 *   xl-migrate-live profile check NAME|FILE    validate a profile file
 *   xl-migrate-live profile preflight SRC-FACTS DST-FACTS [NAME|FILE]
 *                                              the pre-flight check offline,
 *                                              on two facts files
 * A NAME is /etc/migrate-live/profiles/NAME.yaml, or
 * $MIG_PROFILE_DIR/configs/profiles/NAME.yaml when that is set.
 * Entry point: xlml_profile_main() (main.c dispatches "profile" to it).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmig/profile.h>

#include "cli.h"

int xlml_profile_main(struct cli *c, struct mig_ctx *ctx);

#define FACTS_MAX (1u << 20) /* bytes: as the library's cap */

static int load(struct mig_ctx *ctx, const char *what, struct mig_profile **p_out)
{
    char *err = NULL;
    int rc = mig_profile_load(ctx, what, p_out, &err);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live profile: %s\n", err ? err : mig_strerror(rc));
        free(err);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* Read a facts file ("-" is stdin), at most FACTS_MAX bytes. */
static char *read_facts(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (!f) {
        fprintf(stderr, "xl-migrate-live profile: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(FACTS_MAX + 1);
    if (buf)
        len = fread(buf, 1, FACTS_MAX + 1, f);
    if (f != stdin)
        fclose(f);
    if (!buf) {
        fprintf(stderr, "xl-migrate-live profile: out of memory\n");
        return NULL;
    }
    if (len > FACTS_MAX) {
        fprintf(stderr, "xl-migrate-live profile: %s: more than %u bytes of facts\n", path,
                FACTS_MAX);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static int cmd_render(struct cli *c, struct mig_ctx *ctx, const char *what)
{
    struct mig_profile *p = NULL;
    char *cpuid = NULL, *skipped = NULL;
    /* XEN_VERSION=4.18 (or later) renders every name; the default suits
     * Xen 4.17 (Debian 12) and every later xl. */
    const char *xen = getenv("XEN_VERSION");
    int rc = load(ctx, what, &p);
    if (rc != EXIT_OK)
        return rc;
    if (mig_profile_render_cpuid(p, xen && *xen ? xen : NULL, &cpuid, &skipped) < 0) {
        fprintf(stderr, "xl-migrate-live profile: out of memory\n");
        rc = EXIT_FAILED;
    } else if (c->json) {
        printf("{\"profile\":");
        json_str(stdout, mig_profile_name(p));
        printf(",\"cpuid\":");
        json_str(stdout, cpuid);
        printf(",\"not_hidden\":");
        json_str(stdout, skipped);
        printf("}\n");
    } else {
        /* Ready to paste into the guest's xl.cfg. */
        printf("cpuid = \"%s\"\n", cpuid);
        if (skipped && *skipped)
            fprintf(stderr,
                    "xl-migrate-live profile: note: xl before Xen 4.18 cannot hide %s; "
                    "the pre-flight check still compares them (XEN_VERSION=4.18 renders "
                    "them)\n",
                    skipped);
    }
    free(skipped);
    free(cpuid);
    mig_profile_free(p);
    return rc;
}

static int cmd_check(struct cli *c, struct mig_ctx *ctx, const char *what)
{
    struct mig_profile *p = NULL;
    int rc = load(ctx, what, &p);
    if (c->json) {
        printf("{\"valid\":%s,\"profile\":", rc == EXIT_OK ? "true" : "false");
        json_str(stdout, p ? mig_profile_name(p) : NULL);
        printf(",\"path\":");
        json_str(stdout, p ? mig_profile_path(p) : what);
        printf("}\n");
    } else if (rc == EXIT_OK) {
        printf("%s: profile %s is valid\n", mig_profile_path(p), mig_profile_name(p));
    }
    mig_profile_free(p);
    return rc;
}

static int cmd_preflight(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_profile *p = NULL;
    char *src = NULL, *dst = NULL, *report = NULL;
    int rc = EXIT_FAILED;

    if (c->npos == 5 && load(ctx, c->pos[4], &p) != EXIT_OK)
        goto out;
    src = read_facts(c->pos[2]);
    dst = src ? read_facts(c->pos[3]) : NULL;
    if (!src || !dst)
        goto out;
    int r = mig_preflight_check(ctx, src, dst, p, c->json, &report);
    if (!report) {
        fprintf(stderr, "xl-migrate-live profile: %s\n", mig_strerror(r));
        goto out;
    }
    fputs(report, stdout);
    if (c->json)
        fputc('\n', stdout);
    rc = r == 0 ? EXIT_OK : r == -MIG_EINCOMPAT ? EXIT_INCOMPAT : EXIT_FAILED;
out:
    free(report);
    free(src);
    free(dst);
    mig_profile_free(p);
    return rc;
}

int xlml_profile_main(struct cli *c, struct mig_ctx *ctx)
{
    const char *verb = c->npos > 1 ? c->pos[1] : NULL;
    if (!verb)
        return usage_error("profile needs render NAME|FILE, check NAME|FILE or preflight "
                           "SRC-FACTS DST-FACTS [NAME|FILE]");
    if (strcmp(verb, "render") == 0 || strcmp(verb, "check") == 0) {
        if (c->npos != 3)
            return usage_error("profile %s takes one NAME or FILE", verb);
        return verb[0] == 'r' ? cmd_render(c, ctx, c->pos[2]) : cmd_check(c, ctx, c->pos[2]);
    }
    if (strcmp(verb, "preflight") == 0) {
        if (c->npos != 4 && c->npos != 5)
            return usage_error("profile preflight takes SRC-FACTS DST-FACTS [NAME|FILE]");
        return cmd_preflight(c, ctx);
    }
    return usage_error("unknown profile command '%s' (render, check, preflight)", verb);
}
