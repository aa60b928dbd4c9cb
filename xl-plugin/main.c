/*
 * main.c: the xl-migrate-live command. Reads /etc/xen/migrate-live.conf,
 * parses the command line (which wins), and hands each subcommand to its
 * module. See xl-migrate-live(1) and usage() below.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "units.h"

#define DEFAULT_CONFIG "/etc/xen/migrate-live.conf"

enum {
    OPT_DOWNTIME = 256, OPT_BANDWIDTH, OPT_PARALLEL, OPT_COMPRESS, OPT_TRANSPORT, OPT_POLICY,
    OPT_TIMEOUT, OPT_ON_TIMEOUT, OPT_THROTTLE, OPT_NO_THROTTLE, OPT_JSON, OPT_DRY_RUN,
    OPT_PSK, OPT_INSECURE, OPT_PKI, OPT_STATE_DIR, OPT_HOST, OPT_BACKEND, OPT_MEM, OPT_DIRTY,
    OPT_PATTERN, OPT_VCPUS, OPT_SIM, OPT_DIR, OPT_LISTEN, OPT_LINK_TIMEOUT, OPT_MAX_ROUNDS,
    OPT_CONFIG, OPT_RECEIVE_ARGS, OPT_PROFILE, OPT_CHECK, OPT_POLICY_FILE,
    OPT_SOCKET, OPT_TCP_PORT, OPT_READ_ONLY, OPT_DAEMON,
    OPT_DISK_MAP, OPT_DOMAIN, OPT_DISK_NAME, OPT_DISK_DIR, OPT_DISK,
    OPT_NET, OPT_VIF, OPT_QDISK,
};

static const struct option options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"downtime", required_argument, NULL, OPT_DOWNTIME},
    {"bandwidth", required_argument, NULL, OPT_BANDWIDTH},
    {"parallel", required_argument, NULL, OPT_PARALLEL},
    {"compress", required_argument, NULL, OPT_COMPRESS},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"on-timeout", required_argument, NULL, OPT_ON_TIMEOUT},
    {"throttle", no_argument, NULL, OPT_THROTTLE},
    {"no-throttle", no_argument, NULL, OPT_NO_THROTTLE},
    {"max-rounds", required_argument, NULL, OPT_MAX_ROUNDS},
    {"link-timeout", required_argument, NULL, OPT_LINK_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"psk", required_argument, NULL, OPT_PSK},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"pki", required_argument, NULL, OPT_PKI},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"host", required_argument, NULL, OPT_HOST},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"mem", required_argument, NULL, OPT_MEM},
    {"dirty", required_argument, NULL, OPT_DIRTY},
    {"pattern", required_argument, NULL, OPT_PATTERN},
    {"vcpus", required_argument, NULL, OPT_VCPUS},
    {"sim", required_argument, NULL, OPT_SIM},
    {"dir", required_argument, NULL, OPT_DIR},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"receive-args", required_argument, NULL, OPT_RECEIVE_ARGS},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"check", no_argument, NULL, OPT_CHECK},
    {"policy-file", required_argument, NULL, OPT_POLICY_FILE},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"tcp-port", required_argument, NULL, OPT_TCP_PORT},
    {"read-only", no_argument, NULL, OPT_READ_ONLY},
    {"daemon", no_argument, NULL, OPT_DAEMON},
    {"disk-map", required_argument, NULL, OPT_DISK_MAP},
    {"domain", required_argument, NULL, OPT_DOMAIN},
    {"disk-name", required_argument, NULL, OPT_DISK_NAME},
    {"disk-dir", required_argument, NULL, OPT_DISK_DIR},
    {"qdisk", required_argument, NULL, OPT_QDISK},
    {"disk", required_argument, NULL, OPT_DISK},
    {"net", required_argument, NULL, OPT_NET},
    {"vif", required_argument, NULL, OPT_VIF},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f,
"Usage: xl-migrate-live [OPTIONS] DOMAIN HOST\n"
"       xl-migrate-live --check [--profile NAME|FILE] DOMAIN HOST\n"
"       xl-migrate-live receive|listen URI|resolve DOMAIN|facts [OPTIONS]\n"
"       xl-migrate-live profile render|check NAME|FILE\n"
"       xl-migrate-live [--policy-file F] policy run|plan|balance|consolidate|check\n"
"       xl-migrate-live [--policy-file F] policy evacuate|restore|enter HOST|status [HOST]\n"
"       xl-migrate-live simhost --dir DIR [--listen URI] [--mem SIZE]\n"
"       xl-migrate-live --host DIR sim create NAME|list|destroy NAME [OPTIONS]\n"
"                                  (sim create ... --disk SIZE: with a managed disk)\n"
"       xl-migrate-live nbd-serve --socket PATH|--tcp-port N [--read-only] [--daemon] FILE\n"
"       xl-migrate-live disk-serve --domain DOM --socket PATH [--disk-name N] [--daemon] IMAGE\n"
"       xl-migrate-live net show VIF|announce VIF MAC [IP..]|cleanup DOMAIN|plan DOMAIN VIF..\n"
"       xl-migrate-live demo\n"
"       xl-migrate-live inspect FILE | save DOMAIN FILE   (Xen save images, as xl's)\n"
"\n"
"Live-migrate DOMAIN ([xen:|sim:]NAME, UUID or domain id) to HOST (a host name\n"
"reached over ssh as xl does, or tls:H:P, tcp:H:P, ssh:HOST, unix:PATH).\n"
"\n"
"Migration options:\n"
"  --downtime MS          downtime target in ms (default 300)\n"
"  --bandwidth RATE       limit, e.g. 500M, 1GB/s, 800Mbit (default unlimited)\n"
"  --parallel N           data channels (default 1; tls/tcp only)\n"
"  --compress none|zstd   compress page batches (default none)\n"
"  --transport ssh|tls|tcp  transport for a bare host name (default ssh)\n"
"  -s SSHCOMMAND          use SSHCOMMAND instead of ssh (as xl)\n"
"  --receive-args ARGS    ssh: arguments for the remote 'xl-migrate-live receive'\n"
"  --policy downtime|xl   when to stop pre-copy (default downtime)\n"
"  --timeout S            total time limit in seconds (default none)\n"
"  --on-timeout abort|switchover  what the limit does (default abort)\n"
"  --throttle, --no-throttle  slow a guest that dirties too fast (default on)\n"
"  --profile NAME|FILE    compatibility profile the move must respect\n"
"  --check                run the compatibility pre-flight only (exit 0 or 3)\n"
"  --psk FILE             tcp: pre-shared key file\n"
"  --insecure             tcp: no authentication (trusted networks only)\n"
"  --pki DIR              tls: certificates (default /etc/pki/migrate-live)\n"
"  --state-dir DIR        journal and locks (default /var/lib/migrate-live)\n"
"  --net KEY=VALUE        network handoff: uplink=PORT, settle=MS, rounds=N, gap=MS,\n"
"                         wait=MS, rundir=DIR (Open vSwitch), ofctl=1, off=1\n"
"  --host DIR             act on the test-guest host in DIR (sim: domains)\n"
"  --mem SIZE             simhost: the host's own memory, populated at start and\n"
"                         handed to guests as a hypervisor does (default: none,\n"
"                         each guest's memory comes from the kernel on first touch)\n"
"  --vif SPEC             sim create: a NIC, as xl: mac=M,bridge=B,vifname=V[,ip=A]\n"
"  --dry-run              print the plan and exit\n"
"  --json                 one JSON object per second and a final report\n"
"  --disk-map SRC=DST     receive/listen/simhost (and ssh: migrations, passed to the\n"
"                         receiver): write the managed disk SRC (path or file name on\n"
"                         the source) to DST (file or block device) on this host\n"
"  --disk-dir DIR         receive/listen: disks without --disk-map go to\n"
"                         DIR/DOMAIN/FILE (simhost --listen: its DIR/disks)\n"
"  --qdisk SOCK,DEV[,NAME]  migrate: also move a disk the domain's own QEMU serves\n"
"                         (QMP socket SOCK, device or node DEV; NAME for --disk-map)\n"
"  -v, --verbose / -q, --quiet   more / less logging\n"
"\n"
"nbd-serve options (serve FILE, an image or block device, over NBD):\n"
"  --socket PATH          listen on a unix socket\n"
"  --tcp-port N           listen on 127.0.0.1:N (0: any free port)\n"
"  --read-only            refuse writes\n"
"  --daemon               managed-disk mode: lock memory, I/O flusher (foreground)\n"
"\n"
"disk-serve options (serve IMAGE as a managed disk of DOM: NBD export through the\n"
"block mirror, control socket STATE_DIR/disks/DOM/NAME.ctl for migrations):\n"
"  --domain DOM           the domain the disk belongs to\n"
"  --socket PATH          the NBD unix socket (the guest's, or dom0's nbd-client's)\n"
"  --disk-name NAME       disk name (default: IMAGE's file name)\n"
"  --daemon               lock memory, I/O flusher (foreground, for systemd)\n"
"  -h, --help / -V, --version\n"
"\n"
"Exit codes: 0 done, 1 failed (domain still on the source), 2 usage,\n"
"3 incompatible, 4 cancelled, 5 in doubt (run 'resolve'), 6 locked.\n");
}

int lock_domain(const char *state_dir, const char *domain)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", state_dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/locks", state_dir);
    mkdir(path, 0700);
    size_t n = strlen(path);
    snprintf(path + n, sizeof(path) - n, "/");
    n++;
    for (const char *s = domain; *s && n + 6 < sizeof(path); s++)
        path[n++] = (*s == '/' ? '_' : *s);
    snprintf(path + n, sizeof(path) - n, ".lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "xl-migrate-live: cannot open lock %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "xl-migrate-live: %s is locked by another migration or policy run\n",
                domain);
        close(fd);
        return -2;
    }
    return fd;
}

/* Apply one option (from argv or the config file). 0, or an exit code. */
static int apply(struct cli *c, int opt, const char *arg, const char *where)
{
    uint64_t v;
    switch (opt) {
    case 'v':
        c->verbosity++;
        break;
    case 'q':
        c->verbosity = -1;
        break;
    case 's':
        c->mp.link.ssh_command = arg;
        break;
    case OPT_DOWNTIME:
        if (units_parse_uint(arg, 1, 3600000, &v) < 0)
            return usage_error("%s--downtime: '%s' is not a number of milliseconds", where, arg);
        c->mp.downtime_ms = (uint32_t)v;
        break;
    case OPT_BANDWIDTH:
        if (units_parse_rate(arg, &v) < 0 || v == 0)
            return usage_error("%s--bandwidth: '%s' is not a rate (e.g. 500M, 1GB/s, 800Mbit)",
                               where, arg);
        c->mp.bandwidth = v;
        break;
    case OPT_PARALLEL:
        if (units_parse_uint(arg, 1, 16, &v) < 0)
            return usage_error("%s--parallel: '%s' is not a channel count from 1 to 16", where, arg);
        c->mp.link.channels = (unsigned)v;
        c->parallel_given = true;
        break;
    case OPT_COMPRESS:
        if (strcmp(arg, "zstd") == 0)
            c->mp.compress = true;
        else if (strcmp(arg, "none") == 0)
            c->mp.compress = false;
        else
            return usage_error("%s--compress: '%s' is not none or zstd", where, arg);
        break;
    case OPT_TRANSPORT:
        if (strcmp(arg, "ssh") && strcmp(arg, "tls") && strcmp(arg, "tcp"))
            return usage_error("%s--transport: '%s' is not ssh, tls or tcp", where, arg);
        c->transport = arg;
        break;
    case OPT_POLICY:
        if (strcmp(arg, "downtime") == 0)
            c->mp.policy = MIG_POLICY_DOWNTIME;
        else if (strcmp(arg, "xl") == 0)
            c->mp.policy = MIG_POLICY_XL;
        else
            return usage_error("%s--policy: '%s' is not downtime or xl", where, arg);
        break;
    case OPT_TIMEOUT:
        if (units_parse_uint(arg, 1, 86400 * 7, &v) < 0)
            return usage_error("%s--timeout: '%s' is not a number of seconds", where, arg);
        c->mp.timeout_s = (uint32_t)v;
        break;
    case OPT_ON_TIMEOUT:
        if (strcmp(arg, "abort") == 0)
            c->mp.on_timeout = MIG_ON_TIMEOUT_ABORT;
        else if (strcmp(arg, "switchover") == 0)
            c->mp.on_timeout = MIG_ON_TIMEOUT_SWITCHOVER;
        else
            return usage_error("%s--on-timeout: '%s' is not abort or switchover", where, arg);
        break;
    case OPT_THROTTLE:
        c->mp.throttle = true;
        break;
    case OPT_NO_THROTTLE:
        c->mp.throttle = false;
        break;
    case OPT_MAX_ROUNDS:
        if (units_parse_uint(arg, 1, 1000, &v) < 0)
            return usage_error("%s--max-rounds: '%s' is not a count from 1 to 1000", where, arg);
        c->mp.max_rounds = (uint32_t)v;
        break;
    case OPT_LINK_TIMEOUT:
        if (units_parse_uint(arg, 100, 600000, &v) < 0)
            return usage_error("%s--link-timeout: '%s' is not 100 to 600000 ms", where, arg);
        c->mp.link.timeout_ms = (unsigned)v;
        break;
    case OPT_JSON:
        c->json = true;
        break;
    case OPT_DRY_RUN:
        c->dry_run = true;
        break;
    case OPT_PSK:
        c->mp.link.psk_file = arg;
        break;
    case OPT_INSECURE:
        c->mp.link.insecure = true;
        break;
    case OPT_PKI:
        c->mp.link.pki_dir = arg;
        break;
    case OPT_STATE_DIR:
        c->mp.state_dir = arg;
        break;
    case OPT_HOST:
    case OPT_DIR:
        c->host_dir = arg;
        break;
    case OPT_BACKEND:
        c->backend = arg;
        break;
    case OPT_MEM:
        if (units_parse_size(arg, &v) < 0 || v < (1u << 20))
            return usage_error("%s--mem: '%s' is not a size of at least 1M (e.g. 512M, 2G)", where,
                               arg);
        c->sim_mem = v;
        break;
    case OPT_DIRTY:
        if (strcmp(arg, "max") != 0 && units_parse_rate(arg, &v) < 0)
            return usage_error("%s--dirty: '%s' is not a rate or 'max'", where, arg);
        c->sim_dirty = arg;
        break;
    case OPT_PATTERN:
        if (strcmp(arg, "uniform") && strcmp(arg, "hotset") && strcmp(arg, "sequential"))
            return usage_error("%s--pattern: '%s' is not uniform, hotset or sequential", where, arg);
        c->sim_pattern = arg;
        break;
    case OPT_VCPUS:
        if (units_parse_uint(arg, 1, 64, &v) < 0)
            return usage_error("%s--vcpus: '%s' is not a count from 1 to 64", where, arg);
        c->sim_vcpus = (unsigned)v;
        break;
    case OPT_SIM:
        c->sim_extra = arg;
        break;
    case OPT_LISTEN:
        c->listen_uri = arg;
        break;
    case OPT_RECEIVE_ARGS:
        c->mp.link.remote_args = arg;
        break;
    case OPT_PROFILE:
        c->mp.profile = arg;
        break;
    case OPT_CHECK:
        c->mp.check_only = true;
        break;
    case OPT_POLICY_FILE:
        c->policy_file = arg;
        break;
    case OPT_SOCKET:
        c->nbd_socket = arg;
        break;
    case OPT_TCP_PORT:
        if (units_parse_uint(arg, 0, 65535, &v) < 0)
            return usage_error("%s--tcp-port: '%s' is not a port number", where, arg);
        c->nbd_tcp_port = (int)v;
        break;
    case OPT_READ_ONLY:
        c->nbd_read_only = true;
        break;
    case OPT_DAEMON:
        c->nbd_daemon = true;
        break;
    case OPT_DISK_MAP: {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || eq[1] != '/')
            return usage_error("%s--disk-map: '%s' is not SRC=DST (DST an absolute path)", where,
                               arg);
        if (c->n_hook_args >= sizeof(c->hook_args) / sizeof(c->hook_args[0]) - 1)
            return usage_error("%s--disk-map: too many", where);
        char *s = NULL;
        if (asprintf(&s, "blk:map=%s", arg) < 0)
            return EXIT_FAILED;
        c->hook_args[c->n_hook_args++] = s;
        c->mp.hook_args = (const char *const *)c->hook_args;
        break;
    }
    case OPT_QDISK: {
        const char *comma = strchr(arg, ',');
        if (!comma || comma == arg || comma[1] == '\0' || comma[1] == ',')
            return usage_error("%s--qdisk: '%s' is not SOCKET,DEVICE[,NAME]", where, arg);
        if (c->n_hook_args >= sizeof(c->hook_args) / sizeof(c->hook_args[0]) - 1)
            return usage_error("%s--qdisk: too many disk options", where);
        char *s = NULL;
        if (asprintf(&s, "blk:qdisk=%s", arg) < 0)
            return EXIT_FAILED;
        c->hook_args[c->n_hook_args++] = s;
        c->mp.hook_args = (const char *const *)c->hook_args;
        break;
    }
    case OPT_DISK_DIR: {
        if (arg[0] != '/')
            return usage_error("%s--disk-dir: '%s' is not an absolute path", where, arg);
        if (c->n_hook_args >= sizeof(c->hook_args) / sizeof(c->hook_args[0]) - 1)
            return usage_error("%s--disk-dir: too many disk options", where);
        char *s = NULL;
        if (asprintf(&s, "blk:target-dir=%s", arg) < 0)
            return EXIT_FAILED;
        c->hook_args[c->n_hook_args++] = s;
        c->mp.hook_args = (const char *const *)c->hook_args;
        break;
    }
    case OPT_DISK:
        if (units_parse_size(arg, &v) < 0 || v < (1u << 20) || v % (1u << 20))
            return usage_error("%s--disk: '%s' is not a size in whole MiB (e.g. 64M, 1G)", where,
                               arg);
        c->sim_disk = v;
        break;
    case OPT_DOMAIN:
        c->disk_domain = arg;
        break;
    case OPT_DISK_NAME:
        c->disk_name = arg;
        break;
    case OPT_NET: {
        static const char *const keys[] = {"off=", "rundir=", "uplink=", "settle=", "rounds=",
                                           "gap=", "wait=", "ofctl=", NULL};
        bool known = false;
        for (unsigned i = 0; keys[i]; i++)
            known = known || strncmp(arg, keys[i], strlen(keys[i])) == 0;
        if (!known)
            return usage_error("%s--net: '%s' is not off=, rundir=, uplink=, settle=, rounds=, "
                               "gap=, wait= or ofctl= with a value", where, arg);
        if (c->n_hook_args >= 32)
            return usage_error("%s--net: too many", where);
        if (asprintf(&c->hook_args[c->n_hook_args], "net:%s", arg) < 0)
            return EXIT_FAILED;
        c->n_hook_args++;
        c->mp.hook_args = (const char *const *)c->hook_args;
        break;
    }
    case OPT_VIF:
        if (c->nvifs >= 8)
            return usage_error("%s--vif: at most 8", where);
        c->vifs[c->nvifs++] = arg;
        break;
    default:
        return EXIT_USAGE;
    }
    return 0;
}

/* Defaults from the config file: "key = value" lines whose keys are long
 * option names; '#' starts a comment. A missing default file is fine. */
static int read_config(struct cli *c, const char *path, bool must_exist, char **keep)
{
    FILE *f = fopen(path, "re");
    char line[1024], where[300];
    int lineno = 0;
    if (!f) {
        if (!must_exist && errno == ENOENT)
            return 0;
        return usage_error("cannot read %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line, *eq, *key, *val;
        p[strcspn(p, "#\n")] = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            continue;
        snprintf(where, sizeof(where), "%s:%d: ", path, lineno);
        eq = strchr(p, '=');
        key = p;
        val = eq ? eq + 1 : NULL;
        if (eq) {
            *eq = 0;
            for (char *e = eq - 1; e >= key && (*e == ' ' || *e == '\t'); e--)
                *e = 0;
            while (*val == ' ' || *val == '\t')
                val++;
            for (char *e = val + strlen(val) - 1; e >= val && (*e == ' ' || *e == '\t'); e--)
                *e = 0;
        }
        const struct option *o = NULL;
        for (const struct option *x = options; x->name; x++)
            if (strcmp(x->name, key) == 0)
                o = x;
        if (!o || o->val == 'h' || o->val == 'V' || o->val == OPT_CONFIG) {
            fclose(f);
            return usage_error("%sunknown setting '%s'", where, key);
        }
        if ((o->has_arg == required_argument) != (val != NULL)) {
            fclose(f);
            return usage_error("%s'%s' %s", where, key,
                               val ? "takes no value" : "needs a value (key = value)");
        }
        char *copy = val ? strdup(val) : NULL;
        if (val && !copy) {
            fclose(f);
            return EXIT_FAILED;
        }
        if (copy) {
            /* option strings are borrowed for the whole run */
            for (int i = 0; i < 64; i++)
                if (!keep[i]) {
                    keep[i] = copy;
                    break;
                }
        }
        int rc = apply(c, o->val, copy, where);
        if (rc) {
            fclose(f);
            return rc;
        }
    }
    fclose(f);
    return 0;
}

static void log_to_stderr(void *opaque, enum mig_log_level level, const char *module,
                          const char *msg)
{
    (void)opaque;
    (void)module;
    fprintf(stderr, "xl-migrate-live: %s%s\n", level <= MIG_LOG_WARN ? (level == MIG_LOG_ERROR ? "error: " : "warning: ") : "", msg);
}

int xlml_sim_main(struct cli *c, struct mig_ctx *ctx);
int xlml_simhost_main(struct cli *c, struct mig_ctx *ctx);
int xlml_demo_main(struct cli *c, struct mig_ctx *ctx);
int xlml_sim_guest_main(int argc, char **argv);
void xlml_catch_signals(void);
int xlml_facts_main(struct cli *c, struct mig_ctx *ctx);  /* facts.c */
int xlml_image_main(struct cli *c, struct mig_ctx *ctx);  /* image.c */
int xlml_policy_main(struct cli *c, struct mig_ctx *ctx); /* policy.c */

int main(int argc, char **argv)
{
    struct cli c = {.argv0 = argv[0], .nbd_tcp_port = -1};
    struct mig_ctx *ctx = NULL;
    char *keep[64] = {0};
    const char *config = getenv("XL_MIGRATE_LIVE_CONFIG");
    bool config_given = config != NULL;
    int opt, rc = EXIT_FAILED;

    if (argc > 1 && strcmp(argv[1], "__sim-guest") == 0)
        return xlml_sim_guest_main(argc - 1, argv + 1);
    xlml_catch_signals();

    mig_params_init(&c.mp);
    /* --config must be known before the file is read: look for it first. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[i + 1];
            config_given = true;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
            config_given = true;
        }
    }
    rc = read_config(&c, config ? config : DEFAULT_CONFIG, config_given, keep);
    if (rc)
        goto out;
    opterr = 0; /* our own messages, without the libtool wrapper's path */
    while ((opt = getopt_long(argc, argv, ":hVvqs:", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            rc = EXIT_OK;
            goto out;
        case 'V':
            printf("xl-migrate-live %s\n", PACKAGE_VERSION);
            rc = EXIT_OK;
            goto out;
        case OPT_CONFIG:
            break;
        case ':':
            rc = usage_error("option '%s' needs a value", argv[optind - 1]);
            goto out;
        case '?':
            rc = usage_error("unrecognized option '%s'", argv[optind - 1]);
            goto out;
        default:
            rc = apply(&c, opt, optarg, "");
            if (rc)
                goto out;
        }
    }
    c.pos = argv + optind;
    c.npos = argc - optind;
    if (c.npos == 0) {
        rc = usage_error("missing DOMAIN and HOST");
        goto out;
    }
    rc = mig_ctx_new(&ctx);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live: %s\n", mig_strerror(rc));
        rc = EXIT_FAILED;
        goto out;
    }
    mig_ctx_set_logger(ctx, log_to_stderr, NULL);
    mig_ctx_set_log_level(ctx, c.verbosity < 0 ? MIG_LOG_ERROR
                               : c.verbosity == 0 ? MIG_LOG_WARN
                               : c.verbosity == 1 ? MIG_LOG_INFO
                                                  : MIG_LOG_DEBUG);
    const char *cmd = c.pos[0];
    bool migrating = strcmp(cmd, "receive") && strcmp(cmd, "listen") && strcmp(cmd, "resolve") &&
                     strcmp(cmd, "facts") && strcmp(cmd, "simhost") && strcmp(cmd, "sim") &&
                     strcmp(cmd, "profile") && strcmp(cmd, "policy") && strcmp(cmd, "nbd-serve") &&
                     strcmp(cmd, "disk-serve") &&
                     strcmp(cmd, "net") &&
                     strcmp(cmd, "inspect") && strcmp(cmd, "save");
    if (!migrating) {
        /* only a migration turns Ctrl-C into a cancel; the rest stop as usual
         * (listen and simhost install their own handling) */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    if (strcmp(cmd, "receive") == 0)
        rc = cmd_receive(&c, ctx);
    else if (strcmp(cmd, "listen") == 0)
        rc = cmd_listen(&c, ctx);
    else if (strcmp(cmd, "resolve") == 0)
        rc = cmd_resolve(&c, ctx);
    else if (strcmp(cmd, "facts") == 0)
        rc = xlml_facts_main(&c, ctx);
    else if (strcmp(cmd, "policy") == 0)
        rc = xlml_policy_main(&c, ctx);
    else if (strcmp(cmd, "simhost") == 0)
        rc = xlml_simhost_main(&c, ctx);
    else if (strcmp(cmd, "sim") == 0)
        rc = xlml_sim_main(&c, ctx);
    else if (strcmp(cmd, "profile") == 0)
        rc = xlml_profile_main(&c, ctx);
    else if (strcmp(cmd, "nbd-serve") == 0)
        rc = xlml_nbd_serve_main(&c, ctx);
    else if (strcmp(cmd, "disk-serve") == 0)
        rc = xlml_disk_serve_main(&c, ctx);
    else if (strcmp(cmd, "demo") == 0)
        rc = xlml_demo_main(&c, ctx);
    else if (strcmp(cmd, "net") == 0)
        rc = xlml_net_main(&c, ctx);
    else if (strcmp(cmd, "inspect") == 0 || strcmp(cmd, "save") == 0)
        rc = xlml_image_main(&c, ctx);
    else
        rc = cmd_migrate(&c, ctx);
out:
    mig_ctx_free(ctx);
    free(c.domain_uri);
    free(c.dest_uri);
    free(c.remote_args);
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    for (unsigned i = 0; i < c.n_hook_args; i++)
        free(c.hook_args[i]);
    return rc;
}
