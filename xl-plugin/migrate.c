/*
 * migrate.c: 'xl-migrate-live DOMAIN HOST': resolves the names into URIs,
 * takes the domain's lock, runs the session with a progress line (terminal),
 * plain lines (no terminal) or JSON objects (--json), turns Ctrl-C/SIGTERM
 * into a cancel, and prints the final report with a fixed exit code.
 */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "units.h"

#define DEFAULT_PORT "8002"

/* The session a signal cancels, set while a migration runs, and a cancel
 * that came before it started: the program's only globals. */
static struct mig_session *volatile running_session;
static volatile sig_atomic_t cancelled_early;

static void on_signal(int sig)
{
    (void)sig;
    struct mig_session *s = running_session;
    if (s)
        mig_session_cancel(s);
    else
        cancelled_early = 1;
}

/* Called first thing in main(): Ctrl-C at any time means "cancel". */
void xlml_catch_signals(void);
void xlml_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* DOMAIN as a backend URI (caller frees). */
static char *domain_uri(const struct cli *c, const char *dom)
{
    char *u = NULL;
    if (has_prefix(dom, "sim:")) {
        if (c->host_dir && !strstr(dom, ",host="))
            return asprintf(&u, "%s,host=%s", dom, c->host_dir) < 0 ? NULL : u;
        return strdup(dom);
    }
    if (has_prefix(dom, "xen:"))
        return strdup(dom);
    if (c->host_dir)
        return asprintf(&u, "sim:%s,host=%s", dom, c->host_dir) < 0 ? NULL : u;
    return asprintf(&u, "xen:%s", dom) < 0 ? NULL : u;
}

/* HOST as a transport URI (caller frees). */
char *xlml_host_uri(const char *transport, const char *host);
char *xlml_host_uri(const char *transport, const char *host)
{
    char *u = NULL;
    if (has_prefix(host, "tls:") || has_prefix(host, "tcp:") || has_prefix(host, "ssh:") ||
        has_prefix(host, "unix:"))
        return strdup(host);
    if (!transport || strcmp(transport, "ssh") == 0)
        return asprintf(&u, "ssh:%s", host) < 0 ? NULL : u;
    bool has_port = strchr(host, ':') && host[0] != '[';
    return asprintf(&u, "%s:%s%s%s", transport, host, has_port ? "" : ":",
                    has_port ? "" : DEFAULT_PORT) < 0
               ? NULL
               : u;
}

struct progress_ctx {
    const struct cli *c;
    bool tty;
    bool drew;
    char source_host[256];
};

static void json_common(FILE *f, const struct progress_ctx *pc, const char *status,
                        const struct mig_stats *st)
{
    const struct cli *c = pc->c;
    fprintf(f, "{\"status\":");
    json_str(f, status);
    fprintf(f, ",\"domain\":");
    json_str(f, c->domain_uri);
    fprintf(f, ",\"source\":");
    json_str(f, pc->source_host);
    fprintf(f, ",\"destination\":");
    json_str(f, c->dest_uri);
    fprintf(f,
            ",\"round\":%u,\"transferred_bytes\":%llu,\"total_bytes\":%llu,"
            "\"remaining_bytes\":%llu,\"zero_pages\":%llu,\"bandwidth_bytes_per_s\":%llu,"
            "\"dirty_bytes_per_s\":%llu,\"throttle_percent\":%u,\"expected_downtime_ms\":%llu,"
            "\"downtime_ms\":%llu,\"total_time_ms\":%llu,\"setup_time_ms\":%llu,"
            "\"wire_bytes\":%llu,\"dirty_tracking\":",
            st->rounds, (unsigned long long)st->transferred_bytes,
            (unsigned long long)st->total_bytes, (unsigned long long)st->remaining_bytes,
            (unsigned long long)st->zero_pages, (unsigned long long)st->bandwidth_bytes_per_s,
            (unsigned long long)st->dirty_bytes_per_s, st->throttle_percent,
            (unsigned long long)st->expected_downtime_ms, (unsigned long long)st->downtime_ms,
            (unsigned long long)st->total_time_ms, (unsigned long long)st->setup_time_ms,
            (unsigned long long)st->wire_bytes);
    json_str(f, st->dirty_tracking ? st->dirty_tracking : "none");
    fprintf(f,
            ",\"disk_bytes\":%llu,\"disk_sent_bytes\":%llu,\"disk_forwarded_bytes\":%llu,"
            "\"disk_final_bytes\":%llu,\"disk_forwarding\":%u,\"channels\":%u",
            (unsigned long long)st->disk_bytes, (unsigned long long)st->disk_sent_bytes,
            (unsigned long long)st->disk_forwarded_bytes, (unsigned long long)st->disk_final_bytes,
            st->disk_forwarding, st->channels);
}

static void on_progress(void *opaque, enum mig_state state, const struct mig_stats *st)
{
    struct progress_ctx *pc = opaque;
    const struct cli *c = pc->c;
    char a[32], b[32], r[32], d[32];
    if (c->mp.check_only)
        return; /* a check prints only its verdict */
    if (c->json) {
        json_common(stdout, pc, mig_state_name(state), st);
        printf(",\"running_host\":");
        json_str(stdout, pc->source_host);
        printf(",\"event\":\"progress\"}\n");
        fflush(stdout);
        return;
    }
    if (c->verbosity < 0)
        return;
    uint64_t rate = st->bandwidth_bytes_per_s;
    uint64_t eta = rate ? (st->total_bytes > st->transferred_bytes && st->rounds <= 1
                               ? (st->total_bytes - st->transferred_bytes) / rate
                               : st->remaining_bytes / rate)
                        : 0;
    fprintf(stderr,
            "%s%-13s round %u  %s / %s  %s/s  dirty %s/s  throttle %u%%  exp. downtime %llu ms  "
            "ETA %llus%s",
            pc->tty ? "\r\033[K" : "", mig_state_name(state), st->rounds,
            units_fmt_bytes(st->transferred_bytes, a, sizeof(a)),
            units_fmt_bytes(st->total_bytes, b, sizeof(b)), units_fmt_bytes(rate, r, sizeof(r)),
            units_fmt_bytes(st->dirty_bytes_per_s, d, sizeof(d)), st->throttle_percent,
            (unsigned long long)st->expected_downtime_ms, (unsigned long long)eta,
            pc->tty ? "" : "\n");
    pc->drew = pc->tty;
}

static int exit_code_for(int rc)
{
    switch (rc) {
    case 0:
        return EXIT_OK;
    case -MIG_ECANCELLED:
        return EXIT_CANCELLED;
    case -MIG_EINDOUBT:
        return EXIT_INDOUBT;
    case -MIG_EINCOMPAT:
        return EXIT_INCOMPAT;
    case -MIG_EBUSY:
        return EXIT_LOCKED;
    default:
        return EXIT_FAILED;
    }
}

static const char *status_for(int code)
{
    switch (code) {
    case EXIT_OK:
        return "done";
    case EXIT_CANCELLED:
        return "cancelled";
    case EXIT_INDOUBT:
        return "in-doubt";
    case EXIT_INCOMPAT:
        return "incompatible";
    case EXIT_LOCKED:
        return "locked";
    default:
        return "failed";
    }
}

static void print_plan(const struct cli *c)
{
    const struct mig_params *p = &c->mp;
    char bw[32];
    printf("plan: live-migrate %s to %s\n", c->domain_uri, c->dest_uri);
    printf("  data channels   %u\n", p->link.channels);
    printf("  stop policy     %s", p->policy == MIG_POLICY_XL ? "xl (5 rounds or < 50 dirty pages)\n"
                                                              : "downtime");
    if (p->policy == MIG_POLICY_DOWNTIME)
        printf(", target %u ms\n", p->downtime_ms);
    if (p->bandwidth)
        printf("  bandwidth       %llu bytes/s (%s/s)\n", (unsigned long long)p->bandwidth,
               units_fmt_bytes(p->bandwidth, bw, sizeof(bw)));
    else
        printf("  bandwidth       unlimited\n");
    printf("  compression     %s\n", p->compress ? "zstd" : "none");
    printf("  throttle        %s\n", p->throttle ? "auto-converge" : "off");
    if (p->timeout_s)
        printf("  time limit      %u s, then %s\n", p->timeout_s,
               p->on_timeout == MIG_ON_TIMEOUT_ABORT ? "abort (the domain stays on the source)"
                                                     : "switch over");
    else
        printf("  time limit      none\n");
    printf("  state dir       %s\n", p->state_dir);
}

int cmd_migrate(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_session *s = NULL;
    struct progress_ctx pc = {.c = c, .tty = isatty(STDERR_FILENO) && !c->json};
    int lock_fd = -1, rc, code;

    if (c->npos < 2)
        return usage_error("missing HOST (usage: xl-migrate-live [OPTIONS] DOMAIN HOST)");
    if (c->npos > 2)
        return usage_error("unexpected argument '%s'", c->pos[2]);
    c->domain_uri = domain_uri(c, c->pos[0]);
    c->dest_uri = xlml_host_uri(c->transport, c->pos[1]);
    if (!c->domain_uri || !c->dest_uri)
        return EXIT_FAILED;
    if (strncmp(c->dest_uri, "ssh:", 4) == 0 && c->mp.link.channels > 1)
        return usage_error("--parallel %u: ssh carries one channel; use tls: for parallel "
                           "channels",
                           c->mp.link.channels);
    unsigned n_blk = 0;
    for (unsigned i = 0; i < c->n_hook_args; i++) /* --qdisk is the source's own */
        n_blk += strncmp(c->hook_args[i], "blk:", 4) == 0 &&
                 strncmp(c->hook_args[i], "blk:qdisk=", 10) != 0;
    if (n_blk) {
        /* --disk-map / --disk-dir name paths on the destination: ssh runs
         * the receiver for us, so they go there; a tls:/tcp: listener has
         * its own. (--net applies on both sides and stays here.) */
        if (strncmp(c->dest_uri, "ssh:", 4) != 0)
            return usage_error("--disk-map: give it to the listener on the destination "
                               "(xl-migrate-live listen --disk-map SRC=DST URI); only an ssh: "
                               "migration passes it to the receiver");
        size_t len = strlen(c->mp.link.remote_args ? c->mp.link.remote_args : "") + 1;
        for (unsigned i = 0; i < c->n_hook_args; i++)
            len += strlen(c->hook_args[i]) + 16;
        c->remote_args = calloc(1, len);
        if (!c->remote_args)
            return EXIT_FAILED;
        strcpy(c->remote_args, c->mp.link.remote_args ? c->mp.link.remote_args : "");
        for (unsigned i = 0; i < c->n_hook_args; i++) {
            const char *a = c->hook_args[i], *opt;
            if (strncmp(a, "blk:map=", 8) == 0)
                opt = " --disk-map ";
            else if (strncmp(a, "blk:target-dir=", 15) == 0)
                opt = " --disk-dir ";
            else
                continue;
            a = strchr(a, '=') + 1;
            if (strpbrk(a, " \t\n'\"\\"))
                return usage_error("%s%s: paths with blanks or quotes cannot be passed over ssh",
                                   opt + 1, a);
            strcat(c->remote_args, opt);
            strcat(c->remote_args, a);
        }
        c->mp.link.remote_args = c->remote_args;
    }
    c->mp.domain = c->domain_uri;
    c->mp.destination = c->dest_uri;
    if (gethostname(pc.source_host, sizeof(pc.source_host)) < 0)
        snprintf(pc.source_host, sizeof(pc.source_host), "localhost");
    if (c->dry_run) {
        print_plan(c);
        if (c->mp.profile)
            printf("  profile         %s\n", c->mp.profile);
        return EXIT_OK;
    }

    lock_fd = lock_domain(c->mp.state_dir, c->domain_uri);
    if (lock_fd == -2)
        return EXIT_LOCKED;
    if (lock_fd < 0)
        return EXIT_FAILED;
    rc = mig_session_new(ctx, &c->mp, &s);
    if (rc < 0) {
        close(lock_fd);
        fprintf(stderr, "xl-migrate-live: %s\n", mig_strerror(rc));
        return EXIT_FAILED;
    }
    mig_session_set_progress(s, on_progress, &pc);
    signal(SIGPIPE, SIG_IGN);
    running_session = s;
    if (cancelled_early)
        mig_session_cancel(s);

    rc = mig_session_run(s);

    running_session = NULL;
    code = exit_code_for(rc);
    if (c->mp.check_only) {
        const char *v = mig_session_preflight(s);
        if (c->json) {
            printf("{\"check\":\"%s\",\"domain\":", code == EXIT_OK ? "compatible"
                                                  : code == EXIT_INCOMPAT ? "incompatible"
                                                                          : "failed");
            json_str(stdout, c->domain_uri);
            printf(",\"destination\":");
            json_str(stdout, c->dest_uri);
            printf(",\"verdict\":");
            json_str(stdout, v);
            /* every finding, structured (docs/json-output.md); null when the
             * check never ran (destination unreachable, unknown profile) */
            const char *vj = mig_session_preflight_json(s);
            printf(",\"preflight\":%s", vj ? vj : "null");
            printf(",\"error\":");
            json_str(stdout, code == EXIT_OK ? NULL : mig_session_error(s));
            printf(",\"exit_code\":%d}\n", code);
        } else {
            printf("%s: %s to %s\n", code == EXIT_OK ? "compatible" : code == EXIT_INCOMPAT
                                                                     ? "INCOMPATIBLE"
                                                                     : "check failed",
                   c->domain_uri, c->dest_uri);
            if (v && *v)
                printf("%s%s", v, v[strlen(v) - 1] == '\n' ? "" : "\n");
            else if (code != EXIT_OK)
                printf("  %s\n", mig_session_error(s));
        }
        mig_session_free(s);
        close(lock_fd);
        return code;
    }
    const struct mig_stats *st = mig_session_stats(s);
    const char *running = code == EXIT_OK ? c->dest_uri : code == EXIT_INDOUBT ? NULL
                                                                              : pc.source_host;
    if (pc.drew)
        fputs("\n", stderr);
    if (c->json) {
        json_common(stdout, &pc, status_for(code), st);
        printf(",\"running_host\":");
        json_str(stdout, running);
        printf(",\"exit_code\":%d,\"error\":", code);
        json_str(stdout, code == EXIT_OK ? NULL : mig_session_error(s));
        printf(",\"event\":\"report\"}\n");
    } else if (c->verbosity >= 0 || code != EXIT_OK) {
        char t[32], z[32], w[32];
        printf("%s: migration of %s to %s %s\n", code == EXIT_OK ? "done" : status_for(code),
               c->domain_uri, c->dest_uri, code == EXIT_OK ? "completed" : "did not complete");
        if (code != EXIT_OK)
            printf("  reason          %s\n", mig_session_error(s));
        printf("  total time      %.2f s (setup %llu ms)\n", st->total_time_ms / 1000.0,
               (unsigned long long)st->setup_time_ms);
        if (code == EXIT_OK)
            printf("  downtime        %llu ms (suspend to commit-ack, measured at the source)\n",
                   (unsigned long long)st->downtime_ms);
        printf("  sent            %s of %s in %u rounds (%s on the wire)\n",
               units_fmt_bytes(st->transferred_bytes, t, sizeof(t)),
               units_fmt_bytes(st->total_bytes, z, sizeof(z)), st->rounds,
               units_fmt_bytes(st->wire_bytes, w, sizeof(w)));
        printf("  zero pages      %llu (sent as runs)\n", (unsigned long long)st->zero_pages);
        if (st->compressed_bytes)
            printf("  compression     %s -> %s\n",
                   units_fmt_bytes(st->uncompressed_bytes, t, sizeof(t)),
                   units_fmt_bytes(st->compressed_bytes, z, sizeof(z)));
        if (st->disk_bytes) {
            char f[32], a[32];
            printf("  disks           %s: %s copied, %s forwarded, %s after the suspend\n",
                   units_fmt_bytes(st->disk_bytes, z, sizeof(z)),
                   units_fmt_bytes(st->disk_sent_bytes, t, sizeof(t)),
                   units_fmt_bytes(st->disk_forwarded_bytes, f, sizeof(f)),
                   units_fmt_bytes(st->disk_final_bytes, a, sizeof(a)));
        }
        printf("  data channels   %u\n", st->channels);
        printf("  throttle        %u%% at the end\n", st->throttle_percent);
        printf("  dirty tracking  %s\n", st->dirty_tracking ? st->dirty_tracking : "none");
        printf("  domain runs on  %s\n", running ? running : "UNKNOWN (in doubt: run 'xl-migrate-live resolve')");
    }
    fflush(stdout);
    mig_session_free(s);
    close(lock_fd);
    return code;
}
