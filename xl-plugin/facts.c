/*
 * facts.c: 'xl-migrate-live facts': this host's facts as JSON, as the
 * backend reports them, plus the "domains" list the policies need (name,
 * mem_bytes, vcpus) when the backend's facts lack one: a test-guest host's
 * guests through mig_simhost_list, a Xen host's domains from `xl list -v`
 * (argv, no shell; with their domid and uuid, which Ansible's
 * xen_migrate_live matches). Entry point: xlml_facts_main.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmig/sim.h>

#include "cli.h"

int xlml_facts_main(struct cli *c, struct mig_ctx *ctx);

/* vcpus=N from a guest config string; 1 if absent. */
static unsigned config_vcpus(const char *config)
{
    const char *p = strstr(config, "vcpus=");
    unsigned v = p ? (unsigned)strtoul(p + 6, NULL, 10) : 1;
    return v ? v : 1;
}

/* A source that gave its name up before COMMIT (xl's NAME--migratedaway,
 * ours too): leaving, or in doubt until 'resolve'; no policy moves it. */
static bool leaving(const char *name)
{
    static const char sfx[] = "--migratedaway";
    size_t n = strlen(name), k = sizeof(sfx) - 1;
    return n > k && strcmp(name + n - k, sfx) == 0;
}

static int sim_domains(struct mig_ctx *ctx, const char *dir, FILE *f)
{
    struct mig_sim_guest_status *list = NULL;
    size_t n = 0;
    bool first = true;
    int rc = mig_simhost_list(ctx, dir, &list, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i].name);
        /* a migration arriving right now is not the host's yet */
        if (strcmp(list[i].state, "incoming") == 0 || leaving(list[i].name))
            continue;
        /* a committed arrival still reports the name it was started with
         * (the guest answers 'list' itself; the host renamed it) */
        if (len > 10 && strcmp(list[i].name + len - 10, "--incoming") == 0)
            list[i].name[len - 10] = 0;
        fprintf(f, "%s{\"name\":", first ? "" : ",");
        json_str(f, list[i].name);
        fprintf(f, ",\"mem_bytes\":%llu,\"vcpus\":%u,\"state\":",
                (unsigned long long)list[i].mem_bytes, config_vcpus(list[i].config));
        json_str(f, list[i].state);
        fprintf(f, "}");
        first = false;
    }
    free(list);
    return 0;
}

/* `xl list -v`: "Name ID Mem VCPUs State Time(s) UUID Reason-Code ...", Mem in
 * MiB; Domain-0 left out. The uuid is given only when it is well formed. */
static int xen_domains(FILE *f)
{
    int pfd[2] = {-1, -1}, status = 0, rc = -MIG_EBACKEND;
    FILE *in = NULL;
    char line[512];
    bool first = true;
    pid_t pid;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -MIG_EIO;
    pid = fork();
    if (pid < 0)
        goto out;
    if (pid == 0) {
        char *const argv[] = {"xl", "list", "-v", NULL};
        dup2(pfd[1], STDOUT_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    pfd[1] = -1;
    in = fdopen(pfd[0], "r");
    if (!in)
        goto out;
    pfd[0] = -1;
    while (fgets(line, sizeof(line), in)) {
        char name[128], uuid[64] = "";
        unsigned id, vcpus;
        unsigned long long mem;
        int n = sscanf(line, "%127s %u %llu %u %*s %*s %63s", name, &id, &mem, &vcpus, uuid);
        size_t nl = strlen(name);
        if (n < 4 || id == 0 || leaving(name) ||
            (nl > 10 && strcmp(name + nl - 10, "--incoming") == 0))
            continue; /* not this host's to move: leaving, or not yet arrived */
        bool uuid_ok = strlen(uuid) == 36 && strspn(uuid, "0123456789abcdefABCDEF-") == 36 &&
                       uuid[8] == '-' && uuid[13] == '-' && uuid[18] == '-' && uuid[23] == '-';
        fprintf(f, "%s{\"name\":", first ? "" : ",");
        json_str(f, name);
        fprintf(f, ",\"mem_bytes\":%llu,\"vcpus\":%u,\"domid\":%u", mem << 20, vcpus, id);
        if (uuid_ok) {
            fprintf(f, ",\"uuid\":");
            json_str(f, uuid);
        }
        fputc('}', f);
        first = false;
    }
    rc = 0;
out:
    if (in)
        fclose(in);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pid > 0 && (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)))
        rc = -MIG_EBACKEND;
    return rc;
}

int xlml_facts_main(struct cli *c, struct mig_ctx *ctx)
{
    char backend[4200], *json = NULL, *doms = NULL;
    size_t dlen = 0;
    FILE *mf = NULL;
    int rc, ret = EXIT_FAILED;

    if (c->npos != 1)
        return usage_error("facts takes no arguments");
    if (c->backend)
        snprintf(backend, sizeof(backend), "%s", c->backend);
    else if (c->host_dir)
        snprintf(backend, sizeof(backend), "sim:host=%s", c->host_dir);
    else
        snprintf(backend, sizeof(backend), "xen:");
    rc = mig_host_facts(ctx, backend, &json);
    if (rc < 0)
        goto out;
    size_t jl = strlen(json);
    while (jl && (json[jl - 1] == '\n' || json[jl - 1] == ' '))
        json[--jl] = 0;
    if (strstr(json, "\"domains\"") || jl < 2 || json[jl - 1] != '}') {
        printf("%s\n", json); /* the backend lists them itself */
        ret = EXIT_OK;
        goto out;
    }
    mf = open_memstream(&doms, &dlen);
    if (!mf) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = strncmp(backend, "sim:", 4) == 0 ? sim_domains(ctx, c->host_dir, mf) : xen_domains(mf);
    if (fclose(mf) != 0 && rc == 0)
        rc = -MIG_ENOMEM;
    mf = NULL;
    if (rc < 0)
        goto out;
    json[jl - 1] = 0;
    printf("%s%s\"domains\":[%s]}\n", json, jl > 2 ? "," : "", doms);
    ret = EXIT_OK;
out:
    if (ret != EXIT_OK)
        fprintf(stderr, "xl-migrate-live facts: %s\n", mig_strerror(rc));
    free(doms);
    free(json);
    return ret;
}
