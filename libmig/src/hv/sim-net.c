/*
 * sim-net.c: the test guest's NICs. A guest's config may list vifs
 * ("vifN=MAC/IFNAME/BRIDGE[/IPS]"); IFNAME is the host end of a veth whose
 * other end is the guest's network endpoint (a namespace of the test's).
 * Like Xen, where the domain's vif goes away with the source domain and a
 * new one is plugged by the hotplug script on the destination, the sim
 * moves the veth end: at COMMIT the destination pulls it out of the source
 * host's network namespace (named by netns=PID in the description the
 * source sent) and plugs it into its bridge (nh_hotplug_add: OVS or Linux
 * bridge); after COMMIT the source unplugs what is left of it.
 *
 * Entry points: mig__sim_net_info, mig__sim_net_plug, mig__sim_net_unplug.
 */
#include <config.h>

#define _GNU_SOURCE 1
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "sim"
#include "nh.h"
#include "sim.h"

int mig__sim_net_info(const char *config, pid_t pid, char *out, size_t cap)
{
    struct nh_vif_spec vifs[NH_MAX_VIFS];
    unsigned nv = 0;
    char *copy = strdup(config), *save = NULL;
    size_t len = 0;
    if (!copy)
        return -MIG_ENOMEM;
    out[0] = 0;
    /* the config without a previous host's netns= */
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strncmp(t, "netns=", 6))
            continue;
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "", t);
    }
    free(copy);
    if (nh_vifs_parse(config, vifs, NH_MAX_VIFS, &nv) == 0 && nv > 0)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, ",netns=%d", (int)pid);
    return len < cap ? 0 : -MIG_ETOOBIG;
}

/* Move 'ifname' from the network namespace of process 'from' into ours. */
static int pull(struct mig_ctx *ctx, pid_t from, const char *ifname)
{
    char path[64], self[32];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)from);
    snprintf(self, sizeof(self), "%d", (int)getpid());
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        MIG_LOG(ctx, ERROR, "vif %s: the source's namespace %s: %s", ifname, path,
                strerror(errno));
        return mig__from_errno(errno);
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(nsfd);
        return mig__from_errno(errno);
    }
    if (pid == 0) {
        const char *argv[] = {"ip", "link", "set", "dev", ifname, "netns", self, NULL};
        if (setns(nsfd, CLONE_NEWNET) < 0)
            _exit(126);
        sigset_t none; /* the caller's thread may block signals (simhost's listener) */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(nsfd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        MIG_LOG(ctx, ERROR, "vif %s: cannot move it from the source host's namespace", ifname);
        return -MIG_EBACKEND;
    }
    return 0;
}

static pid_t netns_pid(const char *config)
{
    const char *p = strstr(config, "netns=");
    while (p && p != config && p[-1] != ',')
        p = strstr(p + 1, "netns=");
    return p ? (pid_t)atoi(p + 6) : 0;
}

int mig__sim_net_plug(struct mig_ctx *ctx, const char *config, const char *domain)
{
    struct nh_vif_spec vifs[NH_MAX_VIFS];
    struct nh_opts o;
    unsigned nv = 0;
    int rc = nh_vifs_parse(config, vifs, NH_MAX_VIFS, &nv);
    pid_t from = netns_pid(config);
    nh_opts_init(&o);
    for (unsigned i = 0; rc == 0 && i < nv; i++) {
        if (!if_nametoindex(vifs[i].ifname)) {
            if (!from) {
                MIG_LOG(ctx, ERROR, "vif %s is nowhere to be found", vifs[i].ifname);
                return -MIG_ENOENT;
            }
            rc = pull(ctx, from, vifs[i].ifname);
            if (rc < 0)
                return rc;
        }
        rc = nh_hotplug_add(ctx, &o, vifs[i].bridge, vifs[i].ifname, domain, vifs[i].mac);
        if (rc == 0) {
            struct timespec ts; /* wall clock: tests line it up with packet times */
            clock_gettime(CLOCK_REALTIME, &ts);
            MIG_LOG(ctx, INFO, "vif %s of %s plugged into %s at %lld.%06ld", vifs[i].ifname,
                    domain, vifs[i].bridge, (long long)ts.tv_sec, ts.tv_nsec / 1000);
        }
    }
    return rc;
}

void mig__sim_net_unplug(struct mig_ctx *ctx, const char *config)
{
    struct nh_vif_spec vifs[NH_MAX_VIFS];
    struct nh_opts o;
    unsigned nv = 0;
    nh_opts_init(&o);
    if (nh_vifs_parse(config, vifs, NH_MAX_VIFS, &nv) < 0)
        return;
    for (unsigned i = 0; i < nv; i++)
        if (nh_hotplug_remove(ctx, &o, vifs[i].ifname) < 0)
            MIG_LOG(ctx, WARN, "vif %s: could not unplug it", vifs[i].ifname);
}
