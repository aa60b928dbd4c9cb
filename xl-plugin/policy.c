/*
 * policy.c: 'xl-migrate-live policy run|plan|evacuate HOST|restore HOST|
 * balance|consolidate|check': the dom0 cron policies (docs/policies.md);
 * 'enter HOST' and 'status [HOST]' set and read the maintenance flag alone
 * (Ansible's xen_host_maintenance). Entry point: xlml_policy_main.
 *
 * One run: read the policy file; take STATE/policy/policy.lock (flock, a
 * second run exits 6 at once); ask every host for its facts over its own
 * exec argv (`... xl-migrate-live facts`); run the health commands; read the
 * maintenance flags and the previous run's moves; let the pure planner
 * (libmig/planner.h) decide; print the plan (--dry-run stops there); run
 * the moves by running each source host's `xl-migrate-live --json DOMAIN
 * URI`, at most 'concurrency' at once, each after the moves it depends on,
 * with one JSON line per move; stop starting moves once one is in doubt;
 * remember the moves for the next run; run the consolidation hook.
 * Every command is an argv array, never a shell string.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmig/planner.h>

#include "cli.h"

#define DEFAULT_POLICY    "/etc/xen/migrate-live/policy.yaml"
#define FACTS_TIMEOUT_MS  60000
#define HEALTH_TIMEOUT_MS 60000
#define HOOK_TIMEOUT_MS   600000
#define OUTPUT_MAX        (4u << 20)

enum { EXIT_IMPOSSIBLE = 7 }; /* docs/policies.md */

int xlml_policy_main(struct cli *c, struct mig_ctx *ctx);

struct run {
    struct cli *c;
    struct mig_pool_policy *pol;
    struct mig_pool *pool;
    char dir[4096]; /* STATE/policy */
    bool json;
    bool dry_run;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* argv = prefix + extra (NULL-terminated); caller frees the array only. */
static char **argv_join(char *const *prefix, char *const *extra)
{
    size_t a = 0, b = 0;
    while (prefix && prefix[a])
        a++;
    while (extra && extra[b])
        b++;
    char **v = calloc(a + b + 1, sizeof(*v));
    if (!v)
        return NULL;
    memcpy(v, prefix, a * sizeof(*v));
    if (b)
        memcpy(v + a, extra, b * sizeof(*v));
    return v;
}

static pid_t spawn(char *const *argv, int out_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "xl-migrate-live policy: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Run argv, capture stdout (caller frees *out) within timeout_ms; the exit
 * status, 124 on timeout (the child is killed), -1 if it cannot start. */
static int run_capture(char *const *argv, unsigned timeout_ms, char **out)
{
    int pfd[2], status = 0, ret;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool timed_out = false;
    uint64_t deadline = now_ms() + timeout_ms;
    pid_t pid;

    *out = NULL;
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid = spawn(argv, pfd[1]);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    for (;;) {
        uint64_t now = now_ms();
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *nb = cap > OUTPUT_MAX ? NULL : realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        ssize_t n = read(pfd[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (buf)
        buf[len] = 0;
    *out = buf;
    if (timed_out)
        return 124;
    ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return ret;
}

/* ---- output ------------------------------------------------------------- */

static void jkv(const char *key, const char *val, bool first)
{
    printf("%s\"%s\":", first ? "{" : ",", key);
    json_str(stdout, val);
}

static void say(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct run *r, const char *fmt, ...)
{
    va_list ap;
    if (r->json || r->c->verbosity < 0)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static const char *hname(const struct run *r, int h)
{
    return h >= 0 && (size_t)h < r->pool->nhosts ? r->pool->hosts[h].name : "?";
}

/* ---- state: maintenance flags, previous moves --------------------------- */

static int mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0700);
            *p = '/';
        }
    return mkdir(tmp, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

static void flag_path(const struct run *r, const char *host, char *buf, size_t len)
{
    snprintf(buf, len, "%s/maintenance/%s", r->dir, host);
}

static bool flagged(const struct run *r, const char *host)
{
    char p[4400];
    flag_path(r, host, p, sizeof(p));
    return access(p, F_OK) == 0;
}

/* STATE/policy/last-moves: "DOMAIN FROM TO RULE" per line. */
static int read_prev(const struct run *r, struct mig_move **out, size_t *n_out)
{
    char p[4400], d[MIG_POOL_NAME_MAX], f[MIG_POOL_NAME_MAX], t[MIG_POOL_NAME_MAX], rule[32];
    struct mig_move *v = NULL;
    size_t n = 0;
    FILE *fp;
    *out = NULL;
    *n_out = 0;
    snprintf(p, sizeof(p), "%s/last-moves", r->dir);
    fp = fopen(p, "re");
    if (!fp)
        return 0;
    while (fscanf(fp, "%79s %79s %79s %31s", d, f, t, rule) == 4) {
        struct mig_move *nv = realloc(v, (n + 1) * sizeof(*v));
        if (!nv)
            break;
        v = nv;
        memset(&v[n], 0, sizeof(v[n]));
        snprintf(v[n].domain, sizeof(v[n].domain), "%s", d);
        v[n].from = mig_pool_policy_host_index(r->pol, f);
        v[n].to = mig_pool_policy_host_index(r->pol, t);
        n++;
    }
    fclose(fp);
    *out = v;
    *n_out = n;
    return 0;
}

static void write_prev(const struct run *r, const struct mig_plan *pl, const int *state)
{
    char p[4400], tmp[4500];
    FILE *fp;
    snprintf(p, sizeof(p), "%s/last-moves", r->dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    fp = fopen(tmp, "we");
    if (!fp)
        return;
    for (size_t i = 0; i < pl->nmoves; i++)
        if (state[i] == 2 /* done */)
            fprintf(fp, "%s %s %s %s\n", pl->moves[i].domain, hname(r, pl->moves[i].from),
                    hname(r, pl->moves[i].to), mig_rule_name(pl->moves[i].rule));
    if (fclose(fp) == 0)
        rename(tmp, p);
}

/* ---- facts and health --------------------------------------------------- */

static void gather(struct run *r, unsigned rules)
{
    for (size_t h = 0; h < r->pol->nhosts; h++) {
        const struct mig_policy_host *ph = &r->pol->hosts[h];
        struct mig_pool_host *host = &r->pool->hosts[h];
        char *const extra[] = {"facts", NULL};
        char **argv = argv_join(ph->exec, extra), *out = NULL, err[600];
        int st = argv ? run_capture(argv, FACTS_TIMEOUT_MS, &out) : -1;
        host->reserve_bytes = ph->reserve_bytes;
        host->maintenance = flagged(r, ph->name);
        err[0] = 0;
        if (st != 0 || !out)
            snprintf(err, sizeof(err), "cannot read facts (exit %d)", st);
        else if (mig_pool_set_facts(r->pool, (int)h, out, err, sizeof(err)) == 0)
            err[0] = 0;
        if (err[0]) {
            /* the host takes no domains this run; evacuating it is impossible */
            fprintf(stderr, "xl-migrate-live policy: %s: %s; no moves to it\n", ph->name, err);
            if (r->json) {
                jkv("event", "policy-facts", true);
                printf(",\"host\":");
                json_str(stdout, ph->name);
                printf(",\"error\":");
                json_str(stdout, err);
                printf("}\n");
            }
        }
        free(out);
        free(argv);
        if (ph->health && (rules & MIG_RULE_AVOID)) {
            out = NULL;
            st = run_capture(ph->health, HEALTH_TIMEOUT_MS, &out);
            free(out);
            host->unhealthy = st != 0;
            if (st != 0)
                fprintf(stderr, "xl-migrate-live policy: %s: health check failed (exit %d)\n",
                        ph->name, st);
            if (r->json) {
                jkv("event", "policy-health", true);
                printf(",\"host\":");
                json_str(stdout, ph->name);
                printf(",\"exit_code\":%d,\"healthy\":%s}\n", st, st ? "false" : "true");
            }
        }
    }
}

/* ---- the plan ----------------------------------------------------------- */

static void print_plan(const struct run *r, const struct mig_plan *pl, unsigned rules)
{
    if (r->json) {
        jkv("event", "policy-plan", true);
        printf(",\"status\":\"%s\",\"rules\":[", pl->impossible ? "impossible" : "ok");
        bool first = true;
        for (unsigned b = 1; b <= MIG_RULE_CONSOLIDATE; b <<= 1)
            if (rules & b) {
                printf("%s\"%s\"", first ? "" : ",", mig_rule_name((enum mig_rule)b));
                first = false;
            }
        printf("],\"moves\":[");
        for (size_t i = 0; i < pl->nmoves; i++) {
            const struct mig_move *m = &pl->moves[i];
            jkv("domain", m->domain, true);
            printf(",\"from\":");
            json_str(stdout, hname(r, m->from));
            printf(",\"to\":");
            json_str(stdout, hname(r, m->to));
            printf(",\"rule\":\"%s\",\"reason\":", mig_rule_name(m->rule));
            json_str(stdout, m->reason);
            printf("}%s", i + 1 < pl->nmoves ? "," : "");
        }
        printf("],\"empty_hosts\":[");
        first = true;
        for (size_t h = 0; h < pl->nhosts; h++)
            if (pl->empty[h]) {
                printf("%s", first ? "" : ",");
                json_str(stdout, hname(r, (int)h));
                first = false;
            }
        printf("],\"why\":");
        json_str(stdout, pl->impossible ? pl->why : NULL);
        printf("}\n");
        fflush(stdout);
        return;
    }
    if (pl->impossible) {
        say(r, "plan impossible: %s\n", pl->why);
        return;
    }
    say(r, "plan: %zu move%s\n", pl->nmoves, pl->nmoves == 1 ? "" : "s");
    for (size_t i = 0; i < pl->nmoves; i++)
        say(r, "  %zu. %s: %s -> %s (%s)\n", i + 1, pl->moves[i].domain,
            hname(r, pl->moves[i].from), hname(r, pl->moves[i].to), pl->moves[i].reason);
    if (rules & MIG_RULE_CONSOLIDATE) {
        say(r, "empty hosts after the plan:");
        for (size_t h = 0; h < pl->nhosts; h++)
            if (pl->empty[h])
                say(r, " %s", hname(r, (int)h));
        say(r, "\n");
    }
}

/* ---- the executor ------------------------------------------------------- */

enum { M_PENDING = 0, M_RUNNING = 1, M_DONE = 2, M_FAILED = 3, M_SKIPPED = 4 };

struct job {
    pid_t pid;
    int out_fd; /* the move's stdout, a temporary file */
    uint64_t start_ms;
};

/* Move j waits for every earlier move that frees memory on its destination
 * and for earlier moves of the same domain (and, in execute(), for a
 * running move to the same destination). */
static bool depends(const struct mig_plan *pl, size_t j, size_t i)
{
    return pl->moves[i].from == pl->moves[j].to ||
           strcmp(pl->moves[i].domain, pl->moves[j].domain) == 0;
}

/* "key":"value" or "key":number of the last report line (borrowed copy in buf). */
static const char *report_field(const char *report, const char *key, char *buf, size_t len)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    if (!report || !(p = strstr(report, pat)))
        return NULL;
    p += strlen(pat);
    if (*p == '"') {
        size_t n = 0;
        for (p++; *p && *p != '"' && n + 1 < len; p++) {
            if (*p == '\\' && p[1])
                p++;
            buf[n++] = *p;
        }
        buf[n] = 0;
        return buf;
    }
    size_t n = strcspn(p, ",}");
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
    return strcmp(buf, "null") == 0 ? NULL : buf;
}

/* The fields every policy-move JSON line starts with. */
static void move_line_head(const struct run *r, const struct mig_move *m)
{
    jkv("event", "policy-move", true);
    printf(",\"rule\":\"%s\",\"domain\":", mig_rule_name(m->rule));
    json_str(stdout, m->domain);
    printf(",\"from\":");
    json_str(stdout, hname(r, m->from));
    printf(",\"to\":");
    json_str(stdout, hname(r, m->to));
    printf(",\"reason\":");
    json_str(stdout, m->reason);
}

static void finish(const struct run *r, const struct mig_move *m, struct job *j, int status,
                   int *state)
{
    char *out = NULL, st[64], err[512], down[32];
    const char *report = NULL;
    off_t size = lseek(j->out_fd, 0, SEEK_END);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

    if (size > 0 && size < (off_t)OUTPUT_MAX && (out = malloc((size_t)size + 1))) {
        ssize_t n = pread(j->out_fd, out, (size_t)size, 0);
        out[n > 0 ? n : 0] = 0;
        for (char *p = out; (p = strstr(p, "\"event\":\"report\"")); p++) {
            char *line = p;
            while (line > out && line[-1] != '\n')
                line--;
            report = line;
        }
    }
    close(j->out_fd);
    j->out_fd = -1;
    *state = code == 0 ? M_DONE : M_FAILED;
    const char *status_s = report_field(report, "status", st, sizeof(st));
    const char *error_s = report_field(report, "error", err, sizeof(err));
    const char *down_s = report_field(report, "downtime_ms", down, sizeof(down));
    move_line_head(r, m);
    printf(",\"status\":");
    json_str(stdout, status_s ? status_s : code == 0 ? "done" : "failed");
    printf(",\"exit_code\":%d,\"downtime_ms\":%s,\"time_ms\":%llu,\"error\":", code,
           down_s ? down_s : "null", (unsigned long long)(now_ms() - j->start_ms));
    json_str(stdout, code == 0 ? NULL : error_s ? error_s : "no report from the move");
    printf("}\n");
    fflush(stdout);
    free(out);
}

static void skipped(const struct run *r, const struct mig_move *m, const char *why)
{
    move_line_head(r, m);
    printf(",\"status\":\"skipped\",\"exit_code\":null,\"downtime_ms\":null,\"time_ms\":0,"
           "\"error\":");
    json_str(stdout, why);
    printf("}\n");
    fflush(stdout);
}

/* Run the plan's moves; the policy exit code. */
static int execute(struct run *r, const struct mig_plan *pl, int *state)
{
    struct job *jobs = calloc(pl->nmoves ? pl->nmoves : 1, sizeof(*jobs));
    unsigned running = 0, limit = r->pol->concurrency ? r->pol->concurrency : 1;
    bool indoubt = false, failed = false;

    if (!jobs)
        return EXIT_FAILED;
    for (;;) {
        /* start what may start */
        for (size_t j = 0; j < pl->nmoves && !indoubt; j++) {
            if (state[j] != M_PENDING || running >= limit)
                continue;
            bool ready = true, dead = false;
            for (size_t i = 0; i < j; i++)
                if (depends(pl, j, i)) {
                    if (state[i] == M_FAILED || state[i] == M_SKIPPED)
                        dead = true;
                    else if (state[i] != M_DONE)
                        ready = false;
                }
            if (dead) {
                state[j] = M_SKIPPED;
                skipped(r, &pl->moves[j], "a move it depends on failed");
                continue;
            }
            /* a receiver serves one migration at a time */
            for (size_t i = 0; i < pl->nmoves; i++)
                if (state[i] == M_RUNNING && pl->moves[i].to == pl->moves[j].to)
                    ready = false;
            if (!ready)
                continue;
            const struct mig_move *m = &pl->moves[j];
            /* --timeout given to the policy limits each move (docs/policies.md) */
            char secs[16];
            snprintf(secs, sizeof(secs), "%u", r->c->mp.timeout_s);
            char *const timed[] = {"--timeout", secs, "--json", (char *)m->domain,
                                   r->pol->hosts[m->to].uri, NULL};
            char *const *extra = r->c->mp.timeout_s ? timed : timed + 2;
            char **argv = argv_join(r->pol->hosts[m->from].exec, extra);
            char tmpl[4200];
            snprintf(tmpl, sizeof(tmpl), "%s/move.XXXXXX", r->dir);
            int fd = mkostemp(tmpl, O_CLOEXEC);
            if (fd >= 0)
                unlink(tmpl);
            jobs[j].out_fd = fd;
            jobs[j].start_ms = now_ms();
            jobs[j].pid = argv && fd >= 0 ? spawn(argv, fd) : -1;
            free(argv);
            if (jobs[j].pid < 0) {
                if (fd >= 0)
                    close(fd);
                state[j] = M_FAILED;
                failed = true;
                skipped(r, m, "cannot start the move");
                continue;
            }
            say(r, "moving %s: %s -> %s (%s)\n", m->domain, hname(r, m->from), hname(r, m->to),
                mig_rule_name(m->rule));
            state[j] = M_RUNNING;
            running++;
        }
        if (!running)
            break;
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (size_t j = 0; j < pl->nmoves; j++)
            if (state[j] == M_RUNNING && jobs[j].pid == pid) {
                finish(r, &pl->moves[j], &jobs[j], status, &state[j]);
                running--;
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                if (code == EXIT_INDOUBT)
                    indoubt = true;
                else if (code != 0)
                    failed = true;
            }
    }
    for (size_t j = 0; j < pl->nmoves; j++)
        if (state[j] == M_PENDING) {
            state[j] = M_SKIPPED;
            skipped(r, &pl->moves[j],
                    indoubt ? "not started: an earlier move is in doubt (run 'resolve')"
                            : "not started");
        }
    free(jobs);
    return indoubt ? EXIT_INDOUBT : failed ? EXIT_FAILED : EXIT_OK;
}

static int run_hook(const struct run *r, const struct mig_plan *pl)
{
    int ret = EXIT_OK;
    for (size_t h = 0; h < pl->nhosts; h++) {
        const struct mig_pool_host *host = &r->pool->hosts[h];
        if (!pl->empty[h] || host->maintenance || host->unhealthy)
            continue;
        char *const extra[] = {(char *)host->name, NULL};
        char **argv = argv_join(r->pol->hook, extra), *out = NULL;
        int st = argv ? run_capture(argv, HOOK_TIMEOUT_MS, &out) : -1;
        free(out);
        free(argv);
        jkv("event", "policy-hook", true);
        printf(",\"host\":");
        json_str(stdout, host->name);
        printf(",\"exit_code\":%d}\n", st);
        fflush(stdout);
        if (st != 0)
            ret = EXIT_FAILED;
    }
    return ret;
}

/* ---- the maintenance flag alone ----------------------------------------- */

/* 'status [HOST]': the flag of HOST, or of every host of the policy file. */
static int show_status(const struct run *r, const char *target)
{
    for (size_t h = 0; h < r->pol->nhosts; h++) {
        const char *name = r->pol->hosts[h].name;
        if (target && strcmp(name, target))
            continue;
        bool m = flagged(r, name);
        if (r->json) {
            jkv("event", "policy-status", true);
            printf(",\"host\":");
            json_str(stdout, name);
            printf(",\"maintenance\":%s}\n", m ? "true" : "false");
        } else if (r->c->verbosity >= 0) {
            printf("%s: %s\n", name, m ? "in maintenance" : "in service");
        }
    }
    fflush(stdout);
    return EXIT_OK;
}

/* 'enter HOST': flag HOST without moving anything now; it refuses
 * placements at once and the next run's maintenance rule empties it. */
static int enter(const struct run *r, const char *target)
{
    char p[4400];
    flag_path(r, target, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "xl-migrate-live policy: %s: %s\n", p, strerror(errno));
        return EXIT_FAILED;
    }
    close(fd);
    say(r, "%s: in maintenance, refuses placements; the next 'policy run' empties it\n", target);
    if (r->json) {
        jkv("event", "policy-enter", true);
        printf(",\"host\":");
        json_str(stdout, target);
        printf("}\n");
    }
    return EXIT_OK;
}

/* ---- the command -------------------------------------------------------- */

static int take_lock(const struct run *r)
{
    char p[4400];
    snprintf(p, sizeof(p), "%s/policy.lock", r->dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "xl-migrate-live policy: cannot open %s: %s\n", p, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "xl-migrate-live policy: another policy run holds %s\n", p);
        close(fd);
        return -2;
    }
    return fd;
}

int xlml_policy_main(struct cli *c, struct mig_ctx *ctx)
{
    struct run r = {.c = c, .json = c->json, .dry_run = c->dry_run};
    const char *sub = c->npos > 1 ? c->pos[1] : NULL, *file = c->policy_file;
    const char *target = NULL;
    struct mig_move *prev = NULL;
    struct mig_plan *pl = NULL;
    size_t nprev = 0;
    int *state = NULL, lock = -1, rc, ret = EXIT_FAILED;
    unsigned rules = 0;
    char err[1024];
    (void)ctx;

    if (!sub)
        return usage_error("policy needs run, plan, evacuate HOST, restore HOST, enter HOST, "
                           "status [HOST], balance, consolidate or check");
    bool one_host = !strcmp(sub, "evacuate") || !strcmp(sub, "restore") || !strcmp(sub, "enter");
    bool status = !strcmp(sub, "status");
    if (status ? c->npos > 3 : one_host ? c->npos != 3 : c->npos != 2)
        return usage_error("policy %s %s", sub,
                           status     ? "takes at most one HOST"
                           : one_host ? "takes one HOST"
                                      : "takes no arguments");
    if (strcmp(sub, "run") && strcmp(sub, "plan") && !one_host && !status &&
        strcmp(sub, "balance") && strcmp(sub, "consolidate") && strcmp(sub, "check"))
        return usage_error("policy: unknown subcommand '%s'", sub);
    target = c->npos == 3 ? c->pos[2] : NULL;
    if (!strcmp(sub, "plan"))
        r.dry_run = true;
    rc = mig_pool_policy_load(file ? file : DEFAULT_POLICY, &r.pol, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live policy: %s\n", err);
        return EXIT_USAGE;
    }
    if (target && mig_pool_policy_host_index(r.pol, target) < 0) {
        ret = usage_error("policy %s: no host '%s' in %s", sub, target, r.pol->file);
        goto out;
    }
    snprintf(r.dir, sizeof(r.dir), "%s/policy",
             c->mp.state_dir ? c->mp.state_dir : "/var/lib/migrate-live");
    char mdir[4400];
    snprintf(mdir, sizeof(mdir), "%s/maintenance", r.dir);
    if (mkdirs(r.dir) < 0 || mkdirs(mdir) < 0) {
        fprintf(stderr, "xl-migrate-live policy: cannot create %s: %s\n", r.dir, strerror(errno));
        goto out;
    }
    if (status) {
        ret = show_status(&r, target);
        goto out;
    }
    if (!strcmp(sub, "enter")) {
        ret = enter(&r, target);
        goto out;
    }
    if (!strcmp(sub, "restore")) {
        char p[4400];
        flag_path(&r, target, p, sizeof(p));
        if (unlink(p) < 0 && errno != ENOENT) {
            fprintf(stderr, "xl-migrate-live policy: %s: %s\n", p, strerror(errno));
            goto out;
        }
        say(&r, "%s: out of maintenance, takes placements again\n", target);
        if (r.json) {
            jkv("event", "policy-restore", true);
            printf(",\"host\":");
            json_str(stdout, target);
            printf("}\n");
        }
        ret = EXIT_OK;
        goto out;
    }
    if (!r.dry_run) {
        lock = take_lock(&r);
        if (lock < 0) {
            if (r.json && lock == -2)
                printf("{\"event\":\"policy-locked\",\"exit_code\":%d}\n", EXIT_LOCKED);
            ret = lock == -2 ? EXIT_LOCKED : EXIT_FAILED;
            goto out;
        }
    }
    if (target && !r.dry_run) {
        char p[4400];
        flag_path(&r, target, p, sizeof(p));
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            fprintf(stderr, "xl-migrate-live policy: %s: %s\n", p, strerror(errno));
            goto out;
        }
        close(fd);
    }
    if (!strcmp(sub, "run") || !strcmp(sub, "plan")) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        rules |= r.pol->maintenance ? MIG_RULE_MAINTENANCE : 0;
        rules |= r.pol->avoid ? MIG_RULE_AVOID : 0;
        if (r.pol->consolidate && mig_pool_policy_in_window(r.pol, tm.tm_hour * 60 + tm.tm_min))
            rules |= MIG_RULE_CONSOLIDATE; /* packing replaces spreading in the window */
        else if (r.pol->balance)
            rules |= MIG_RULE_BALANCE;
    } else if (!strcmp(sub, "evacuate")) {
        rules = MIG_RULE_MAINTENANCE;
    } else if (!strcmp(sub, "balance")) {
        rules = MIG_RULE_BALANCE;
    } else if (!strcmp(sub, "consolidate")) {
        rules = MIG_RULE_CONSOLIDATE;
    } else {
        rules = MIG_RULE_AVOID;
    }
    if ((rc = mig_pool_new(&r.pool)) < 0)
        goto out;
    for (size_t h = 0; h < r.pol->nhosts; h++)
        if ((rc = mig_pool_add_host(r.pool, r.pol->hosts[h].name, NULL)) < 0)
            goto out;
    gather(&r, rules);
    if (target)
        r.pool->hosts[mig_pool_policy_host_index(r.pol, target)].maintenance = true;
    read_prev(&r, &prev, &nprev);
    struct mig_plan_input in = {.pool = r.pool,
                                .policy = r.pol,
                                .rules = rules,
                                .prev = prev,
                                .nprev = nprev,
                                .compat = NULL};
    if ((rc = mig_plan_compute(&in, &pl)) < 0) {
        fprintf(stderr, "xl-migrate-live policy: %s\n", mig_strerror(rc));
        goto out;
    }
    print_plan(&r, pl, rules);
    if (pl->impossible) {
        fprintf(stderr, "xl-migrate-live policy: plan impossible, nothing moved: %s\n", pl->why);
        ret = EXIT_IMPOSSIBLE;
        goto out;
    }
    if (r.dry_run) {
        ret = EXIT_OK;
        goto out;
    }
    state = calloc(pl->nmoves ? pl->nmoves : 1, sizeof(*state));
    if (!state)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    ret = execute(&r, pl, state);
    write_prev(&r, pl, state);
    if (ret == EXIT_OK && (rules & MIG_RULE_CONSOLIDATE) && r.pol->hook)
        ret = run_hook(&r, pl);
    size_t done = 0;
    for (size_t i = 0; i < pl->nmoves; i++)
        done += state[i] == M_DONE;
    if (r.json)
        printf("{\"event\":\"policy-done\",\"moves\":%zu,\"done\":%zu,\"exit_code\":%d}\n",
               pl->nmoves, done, ret);
    else
        say(&r, "%zu of %zu move%s done\n", done, pl->nmoves, pl->nmoves == 1 ? "" : "s");
out:
    if (rc < 0 && ret == EXIT_FAILED && rc != -MIG_EPARSE)
        fprintf(stderr, "xl-migrate-live policy: %s\n", mig_strerror(rc));
    free(state);
    mig_plan_free(pl);
    free(prev);
    mig_pool_free(r.pool);
    mig_pool_policy_free(r.pol);
    if (lock >= 0)
        close(lock);
    return ret;
}
