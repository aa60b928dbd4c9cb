/*
 * sim-proto.c: what the test-guest pieces share: the message layer
 * (SOCK_SEQPACKET packets of text with SCM_RIGHTS descriptors), the config
 * parser, the page format (header, checksum, fill, check) and small helpers.
 * Entry points: mig__sim_send/recv/call/connect/host_call,
 * mig__sim_config_parse, mig__sim_page_fill/check/csum, mig__sim_kv*.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MIG_LOG_MODULE "sim"
#include "sim.h"
#include "nh.h"

/* ---- pages ---------------------------------------------------------------- */

#define WORDS     (MIG_SIM_PAGE / 8)
#define HDR_WORDS (sizeof(struct mig__sim_page_hdr) / 8)
_Static_assert((WORDS - HDR_WORDS) % 2 == 0, "the checksum reads the body in pairs");

uint64_t mig__sim_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t mig__sim_page_csum(uint64_t pfn, uint32_t gen, const void *page)
{
    const uint64_t *w = page;
    uint64_t a = mig__sim_mix64(pfn ^ ((uint64_t)gen << 40) ^ 0x9e3779b97f4a7c15ull);
    uint64_t b = 0;
    size_t i = HDR_WORDS;
    for (; i + 1 < WORDS; i += 2) {
        a = (a ^ w[i]) * 0x100000001b3ull;
        b = (b ^ w[i + 1]) * 0x100000001b3ull;
        a = (a << 7) | (a >> 57);
    }
    /* an odd word count leaves one: never read past the page */
    if (i < WORDS)
        a = (a ^ w[i]) * 0x100000001b3ull;
    return mig__sim_mix64(a ^ (b * 0x9e3779b97f4a7c15ull));
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

void mig__sim_page_fill(void *page, uint64_t pfn, uint32_t gen, bool fill_zero, uint64_t *rng)
{
    uint64_t *w = page;
    struct mig__sim_page_hdr h = {.pfn = pfn, .gen = gen, .magic = MIG_SIM_PAGE_MAGIC};
    if (fill_zero) {
        memset(w + HDR_WORDS, 0, MIG_SIM_PAGE - sizeof(h));
    } else {
        for (size_t i = HDR_WORDS; i < WORDS; i++)
            w[i] = xorshift(rng);
    }
    h.csum = mig__sim_page_csum(pfn, gen, page);
    memcpy(page, &h, sizeof(h));
}

int mig__sim_page_check(const void *page, uint64_t pfn, uint32_t gen)
{
    const uint64_t *w = page;
    struct mig__sim_page_hdr h;
    if (gen == 0) {
        for (size_t i = 0; i < WORDS; i++)
            if (w[i])
                return -MIG_ECRC;
        return 0;
    }
    memcpy(&h, page, sizeof(h));
    if (h.pfn != pfn || h.gen != gen || h.magic != MIG_SIM_PAGE_MAGIC)
        return -MIG_ECRC;
    return h.csum == mig__sim_page_csum(pfn, gen, page) ? 0 : -MIG_ECRC;
}

uint64_t mig__sim_boot_hash(void)
{
    char buf[64] = {0};
    uint64_t h = 1469598103934665603ull;
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, buf, sizeof(buf) - 1);
        (void)r;
        close(fd);
    }
    for (const char *p = buf; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return h;
}

/* ---- config --------------------------------------------------------------- */

int mig__sim_parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text)
        return -MIG_EPARSE;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i' && shift)
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -MIG_EPARSE;
    if (shift && v > (UINT64_MAX >> shift))
        return -MIG_EPARSE;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_pct(const char *v, unsigned *out)
{
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    if (end == v || (*end && strcmp(end, "%") != 0) || x > 100)
        return -MIG_EPARSE;
    *out = (unsigned)x;
    return 0;
}

int mig__sim_config_parse(const char *text, struct mig__sim_config *cfg_out)
{
    struct mig__sim_config c = {
        .mem_bytes = 256ull << 20,
        .vcpus = 1,
        .dirty_bps = 0,
        .pattern = MIG_SIM_UNIFORM,
        .hot_pct = 10,
        .hot_share = 90,
        .fill_zero = false,
        .touch_pct = 100,
        .throttle = 0,
        .tracking = MIG_SIM_TRACK_AUTO,
        .seed = 1,
        /* 1 ms, the resolution the downtime needs (and a 1000 Hz guest
         * kernel's tick): at 100 us the clock thread woke 10000 times a
         * second and preempted a migration's threads on two cores (an idle
         * 2 GiB move took 7% longer, paired runs) */
        .tick_us = 1000,
        .disk_bps = 1u << 20,
    };
    char *copy = strdup(text ? text : "");
    char *save = NULL;
    int rc = 0;
    if (!copy)
        return -MIG_ENOMEM;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *v = strchr(tok, '=');
        if (!v) {
            rc = -MIG_EPARSE;
            goto out;
        }
        *v++ = '\0';
        uint64_t n = 0;
        if (!strcmp(tok, "mem")) {
            rc = mig__sim_parse_size(v, &c.mem_bytes);
        } else if (!strcmp(tok, "vcpus")) {
            rc = mig__sim_parse_size(v, &n);
            if (!rc && (n < 1 || n > 64))
                rc = -MIG_EPARSE;
            c.vcpus = (unsigned)n;
        } else if (!strcmp(tok, "dirty")) {
            if (!strcmp(v, "max"))
                c.dirty_bps = MIG_SIM_DIRTY_MAX;
            else
                rc = mig__sim_parse_size(v, &c.dirty_bps);
        } else if (!strcmp(tok, "pattern")) {
            if (!strcmp(v, "uniform"))
                c.pattern = MIG_SIM_UNIFORM;
            else if (!strcmp(v, "hotset"))
                c.pattern = MIG_SIM_HOTSET;
            else if (!strcmp(v, "sequential"))
                c.pattern = MIG_SIM_SEQUENTIAL;
            else
                rc = -MIG_EPARSE;
        } else if (!strcmp(tok, "hot")) {
            rc = parse_pct(v, &c.hot_pct);
            if (!rc && c.hot_pct == 0)
                rc = -MIG_EPARSE;
        } else if (!strcmp(tok, "hotshare")) {
            rc = parse_pct(v, &c.hot_share);
        } else if (!strcmp(tok, "fill")) {
            if (!strcmp(v, "random"))
                c.fill_zero = false;
            else if (!strcmp(v, "zero"))
                c.fill_zero = true;
            else
                rc = -MIG_EPARSE;
        } else if (!strcmp(tok, "touch")) {
            rc = parse_pct(v, &c.touch_pct);
        } else if (!strcmp(tok, "throttle")) {
            rc = parse_pct(v, &c.throttle);
        } else if (!strcmp(tok, "tracking")) {
            if (!strcmp(v, "auto"))
                c.tracking = MIG_SIM_TRACK_AUTO;
            else if (!strcmp(v, "async"))
                c.tracking = MIG_SIM_TRACK_ASYNC;
            else if (!strcmp(v, "sync"))
                c.tracking = MIG_SIM_TRACK_SYNC;
            else
                rc = -MIG_EPARSE;
        } else if (!strcmp(tok, "seed")) {
            rc = mig__sim_parse_size(v, &c.seed);
        } else if (!strcmp(tok, "prefill")) {
            if (!strcmp(v, "1") || !strcmp(v, "yes"))
                c.prefill = true;
            else if (!strcmp(v, "0") || !strcmp(v, "no"))
                c.prefill = false;
            else
                rc = -MIG_EPARSE;
        } else if (!strcmp(tok, "disk")) {
            rc = mig__sim_parse_size(v, &c.disk_bytes);
            if (!rc && (c.disk_bytes % (1u << 20) || c.disk_bytes > (1ull << 40)))
                rc = -MIG_EPARSE;
        } else if (!strcmp(tok, "diskrate")) {
            rc = mig__sim_parse_size(v, &c.disk_bps);
        } else if (!strcmp(tok, "tick")) {
            rc = mig__sim_parse_size(v, &n);
            if (!rc && (n < 10 || n > 1000000))
                rc = -MIG_EPARSE;
            c.tick_us = (unsigned)n;
        } else if (!strncmp(tok, "vif", 3) && tok[3] >= '0' && tok[3] <= '7' && !tok[4]) {
            /* the guest's NIC: MAC/IFNAME/BRIDGE[/IPS] (net-handoff/config.c) */
            struct nh_vif_spec vif;
            rc = nh_vif_parse(v, &vif);
        } else if (!strcmp(tok, "netns")) {
            /* where the vifs are now: a process in the source host's
             * network namespace (set by the source's info op) */
            rc = mig__sim_parse_size(v, &n);
            if (!rc && (n < 1 || n > INT32_MAX))
                rc = -MIG_EPARSE;
        } else {
            rc = -MIG_EPARSE;
        }
        if (rc)
            goto out;
    }
    if (c.mem_bytes % MIG_SIM_PAGE || c.mem_bytes < 64 * MIG_SIM_PAGE) {
        rc = -MIG_EPARSE;
        goto out;
    }
    *cfg_out = c;
out:
    free(copy);
    return rc;
}

/* ---- messages ------------------------------------------------------------- */

int mig__sim_send(int sock, const char *text, const int *fds, unsigned nfds)
{
    size_t len = strlen(text);
    union {
        char buf[CMSG_SPACE(sizeof(int) * MIG_SIM_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {.iov_base = (void *)text, .iov_len = len ? len : 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (len >= MIG_SIM_MSG_MAX || nfds > MIG_SIM_MAX_FDS)
        return -MIG_ETOOBIG;
    if (!len)
        iov.iov_base = (void *)"";
    if (nfds) {
        memset(&cm, 0, sizeof(cm));
        msg.msg_control = cm.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t r = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return 0;
        if (errno != EINTR)
            return mig__from_errno(errno);
    }
}

int mig__sim_recv(int sock, char *buf, size_t cap, int *fds_out, unsigned *nfds_inout,
                  int timeout_ms)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MIG_SIM_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {.iov_base = buf, .iov_len = cap - 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    unsigned room = nfds_inout ? *nfds_inout : 0;
    unsigned got = 0;
    ssize_t r;
    if (nfds_inout)
        *nfds_inout = 0;
    for (;;) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int pr = poll(&p, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return mig__from_errno(errno);
        if (pr == 0)
            return -MIG_ETIMEOUT;
        r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
    if (r < 0)
        return mig__from_errno(errno);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        unsigned n = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < room)
                fds_out[got++] = fd;
            else
                close(fd);
        }
    }
    if (nfds_inout)
        *nfds_inout = got;
    if (r == 0) {
        for (unsigned i = 0; i < got; i++)
            close(fds_out[i]);
        if (nfds_inout)
            *nfds_inout = 0;
        return -MIG_EPEER;
    }
    if (msg.msg_flags & MSG_TRUNC) {
        for (unsigned i = 0; i < got; i++)
            close(fds_out[i]);
        if (nfds_inout)
            *nfds_inout = 0;
        return -MIG_ETOOBIG;
    }
    buf[r] = '\0';
    return 0;
}

static int err_code(const char *name)
{
    for (int i = 1; i < MIG_ERR_MAX; i++)
        if (!strcmp(mig_errname(i), name))
            return -i;
    return -MIG_EBACKEND;
}

int mig__sim_call(int sock, const char *req, char *resp, size_t cap, int *fds_out,
                  unsigned *nfds_inout, int timeout_ms)
{
    char *buf = malloc(MIG_SIM_MSG_MAX);
    int rc;
    if (!buf)
        return -MIG_ENOMEM;
    rc = mig__sim_send(sock, req, NULL, 0);
    if (rc)
        goto out;
    rc = mig__sim_recv(sock, buf, MIG_SIM_MSG_MAX, fds_out, nfds_inout, timeout_ms);
    if (rc)
        goto out;
    if (!strncmp(buf, "ok", 2) && (buf[2] == '\0' || buf[2] == ' ' || buf[2] == '\n')) {
        if (resp)
            snprintf(resp, cap, "%s", buf[2] ? buf + 3 : "");
        goto out;
    }
    /* "err NAME text": no descriptors travel with an error */
    if (nfds_inout) {
        for (unsigned i = 0; i < *nfds_inout; i++)
            close(fds_out[i]);
        *nfds_inout = 0;
    }
    if (!strncmp(buf, "err ", 4)) {
        char name[32] = "";
        sscanf(buf + 4, "%31s", name);
        rc = err_code(name);
        if (resp)
            snprintf(resp, cap, "%s", buf + 4);
    } else {
        rc = -MIG_EPROTO;
    }
out:
    free(buf);
    return rc;
}

int mig__sim_connect(const char *dir, int *sock_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int sock = -1;
    int rc = 0;
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", dir) >=
        sizeof(sa.sun_path))
        return -MIG_EINVAL;
    sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return mig__from_errno(errno);
    if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = errno == ECONNREFUSED ? -MIG_ENOENT : mig__from_errno(errno);
        goto out;
    }
    *sock_out = sock;
    sock = -1;
out:
    if (sock >= 0)
        close(sock);
    return rc;
}

int mig__sim_host_call(const char *dir, const char *req, char *resp, size_t cap, int *fds_out,
                       unsigned *nfds_inout)
{
    int sock = -1;
    int rc = mig__sim_connect(dir, &sock);
    if (rc) {
        if (nfds_inout)
            *nfds_inout = 0;
        return rc;
    }
    rc = mig__sim_call(sock, req, resp, cap, fds_out, nfds_inout, MIG_SIM_TIMEOUT_MS * 3);
    close(sock);
    return rc;
}

void mig__sim_err(char *buf, size_t cap, int rc, const char *what)
{
    snprintf(buf, cap, "err %s %s", mig_errname(rc), what ? what : mig_strerror(rc));
}

bool mig__sim_kv(const char *text, const char *key, char *val, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (!strncmp(p, key, klen) && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, " \n");
            if (n >= cap)
                n = cap - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return true;
        }
        p += strcspn(p, " \n");
    }
    return false;
}

bool mig__sim_kv_u64(const char *text, const char *key, uint64_t *out)
{
    char v[32];
    if (!mig__sim_kv(text, key, v, sizeof(v)))
        return false;
    *out = strtoull(v, NULL, 0);
    return true;
}

bool mig__sim_kv_i64(const char *text, const char *key, int64_t *out)
{
    char v[32];
    if (!mig__sim_kv(text, key, v, sizeof(v)))
        return false;
    *out = strtoll(v, NULL, 0);
    return true;
}

void mig__sim_status_parse(const char *line, struct mig_sim_guest_status *st)
{
    char v[32];
    uint64_t u = 0;
    int64_t i = 0;
    memset(st, 0, sizeof(*st));
    st->verify_first_bad = -1;
    st->downtime_us = -1;
    mig__sim_kv(line, "name", st->name, sizeof(st->name));
    mig__sim_kv(line, "state", st->state, sizeof(st->state));
    mig__sim_kv(line, "tracking", st->tracking, sizeof(st->tracking));
    mig__sim_kv(line, "config", st->config, sizeof(st->config));
    if (mig__sim_kv_u64(line, "pid", &u))
        st->pid = (int)u;
    mig__sim_kv_u64(line, "mem", &st->mem_bytes);
    mig__sim_kv_u64(line, "writes", &st->writes);
    if (mig__sim_kv_u64(line, "throttle", &u))
        st->throttle = (uint32_t)u;
    if (mig__sim_kv(line, "verify", v, sizeof(v))) {
        if (!strcmp(v, "running"))
            st->verify = MIG_SIM_VERIFY_RUNNING;
        else if (!strcmp(v, "ok"))
            st->verify = MIG_SIM_VERIFY_OK;
        else if (!strcmp(v, "failed"))
            st->verify = MIG_SIM_VERIFY_FAILED;
    }
    mig__sim_kv_u64(line, "checked", &st->verify_pages);
    mig__sim_kv_u64(line, "errors", &st->verify_errors);
    if (mig__sim_kv_i64(line, "first_bad", &i))
        st->verify_first_bad = i;
    if (mig__sim_kv_i64(line, "downtime_us", &i))
        st->downtime_us = i;
    mig__sim_kv_u64(line, "max_gap_us", &st->max_gap_us);
    if (mig__sim_kv_u64(line, "tracked", &u))
        st->tracked = u != 0;
    mig__sim_kv_u64(line, "disk", &st->disk_bytes);
    mig__sim_kv_u64(line, "disk_writes", &st->disk_writes);
    mig__sim_kv_u64(line, "disk_checked", &st->disk_checked);
    mig__sim_kv_u64(line, "disk_errors", &st->disk_errors);
}
