/*
 * journal.c: the records that let an interrupted switchover be settled.
 * The source writes STATE_DIR/indoubt/<domain> before it sends COMMIT and
 * removes it once the outcome is known; the destination writes
 * STATE_DIR/outcomes/<session-id> ("committing" before it unpauses,
 * "committed" after, "discarded" when it drops an incoming domain), and
 * holds STATE_DIR/receiving/<name> locked while it receives that domain
 * (a claim: one left unlocked names a receiver that died mid-way).
 * Files are written to a temporary name, fsynced and renamed.
 * Also the DOMAIN_INFO text codec, which shares the key=value format.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session-internal.h"

void mig__hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

int mig__unhex(const char *in, uint8_t *out, size_t n)
{
    if (strlen(in) != 2 * n)
        return -MIG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = mig__hexval(in[2 * i]), lo = mig__hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -MIG_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -MIG_EINVAL;
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return mig__from_errno(errno);
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return mig__from_errno(errno);
    return 0;
}

/* A domain URI as a file name: '/' and other odd bytes become '_'. */
static void file_name(const char *s, char *out, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == ':' || c == '=' || c == ',';
        out[i] = ok ? c : '_';
    }
    out[i] = 0;
}

static int write_file_atomic(const char *dir, const char *name, const char *text)
{
    char path[4096], tmp[4200];
    int fd = -1, rc = mkdirs(dir);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return mig__from_errno(errno);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
        rc = mig__from_errno(errno ? errno : EIO);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
out:
    close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int read_small_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mig__from_errno(errno);
    ssize_t n = read(fd, buf, len - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return mig__from_errno(err);
    buf[n] = 0;
    return 0;
}

/* Find "key=value" on its own line; copies value. */
static bool kv_get(const char *text, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            const char *v = line + kl + 1;
            size_t vl = strcspn(v, "\n");
            if (vl >= len)
                return false;
            memcpy(out, v, vl);
            out[vl] = 0;
            return true;
        }
    }
    return false;
}

int mig__journal_write(const char *state_dir, const char *domain, const uint8_t sid[16],
                       const char *destination)
{
    char dir[4096], name[256], hex[33], text[8192];
    snprintf(dir, sizeof(dir), "%s/indoubt", state_dir);
    file_name(domain, name, sizeof(name));
    mig__hex(sid, 16, hex);
    if (snprintf(text, sizeof(text), "domain=%s\nsession=%s\ndestination=%s\n", domain, hex,
                 destination) >= (int)sizeof(text))
        return -MIG_EINVAL;
    return write_file_atomic(dir, name, text);
}

int mig__journal_read(const char *state_dir, const char *domain, uint8_t sid_out[16],
                      char *dest_out, size_t dest_len)
{
    char path[4096], name[256], text[8192], hex[64];
    file_name(domain, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/indoubt/%s", state_dir, name);
    int rc = read_small_file(path, text, sizeof(text));
    if (rc < 0)
        return rc;
    if (!kv_get(text, "session", hex, sizeof(hex)) || mig__unhex(hex, sid_out, 16) < 0 ||
        !kv_get(text, "destination", dest_out, dest_len))
        return -MIG_EPARSE;
    return 0;
}

int mig__journal_remove(const char *state_dir, const char *domain)
{
    char path[4096], tmp[4200], name[256];
    file_name(domain, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/indoubt/%s", state_dir, name);
    /* a write cut short by a crash leaves only its temporary file */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    if (unlink(path) < 0 && errno != ENOENT)
        return mig__from_errno(errno);
    return 0;
}

int mig__outcome_write(const char *state_dir, const uint8_t sid[16], const char *outcome,
                       const char *name)
{
    char dir[4096], hex[33], text[256];
    snprintf(dir, sizeof(dir), "%s/outcomes", state_dir);
    mig__hex(sid, 16, hex);
    if (snprintf(text, sizeof(text), "%s\nname=%s\n", outcome, name ? name : "") >=
        (int)sizeof(text))
        return -MIG_EINVAL;
    return write_file_atomic(dir, hex, text);
}

int mig__outcome_read(const char *state_dir, const uint8_t sid[16], enum mig_outcome *outcome_out,
                      char *name_out, size_t name_len)
{
    char path[4096], hex[33], text[256];
    mig__hex(sid, 16, hex);
    snprintf(path, sizeof(path), "%s/outcomes/%s", state_dir, hex);
    if (name_len)
        name_out[0] = 0;
    int rc = read_small_file(path, text, sizeof(text));
    if (rc == -MIG_ENOENT) {
        /* "committing" is made durable before a domain is started, so no
         * record at all means this host never started it. */
        *outcome_out = MIG_OUTCOME_DISCARDED;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (name_len)
        kv_get(text, "name", name_out, name_len);
    if (strncmp(text, "committed\n", 10) == 0)
        *outcome_out = MIG_OUTCOME_COMMITTED;
    else if (strncmp(text, "discarded\n", 10) == 0)
        *outcome_out = MIG_OUTCOME_DISCARDED;
    else
        *outcome_out = MIG_OUTCOME_UNKNOWN;
    return 0;
}

const char *mig_outcome_name(enum mig_outcome o)
{
    switch (o) {
    case MIG_OUTCOME_COMMITTED:
        return "committed";
    case MIG_OUTCOME_DISCARDED:
        return "discarded";
    default:
        return "unknown";
    }
}

/* ---- receiving claims (destination) ------------------------------------ */

/* Lock STATE_DIR/receiving/FILE (created if missing) without waiting.
 * *fd_out: the locked descriptor. -MIG_EBUSY when another process holds it.
 * A claim released (unlinked) between our open and our lock is not ours to
 * take: open again. */
static int claim_lock(const char *dir, const char *file, int *fd_out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    for (int attempt = 0; attempt < 8; attempt++) {
        struct stat a, b;
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return mig__from_errno(errno);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int err = errno;
            close(fd);
            return err == EWOULDBLOCK ? -MIG_EBUSY : mig__from_errno(err);
        }
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            *fd_out = fd;
            return 0;
        }
        close(fd);
    }
    return -MIG_EBUSY;
}

/* The session a claim file names: 0 and *sid_out, or -MIG_ENOENT (empty). */
static int claim_read(int fd, uint8_t sid_out[16], char *name_out, size_t name_len)
{
    char text[512], hex[64];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    if (n <= 0)
        return -MIG_ENOENT;
    text[n] = 0;
    if (!kv_get(text, "session", hex, sizeof(hex)) || mig__unhex(hex, sid_out, 16) < 0)
        return -MIG_ENOENT;
    if (name_len && !kv_get(text, "name", name_out, name_len))
        return -MIG_ENOENT;
    return 0;
}

int mig__claim_take(const char *state_dir, const char *name, const uint8_t sid[16], int *fd_out,
                    bool *stale_out, uint8_t stale_sid_out[16])
{
    char dir[4096], file[256], hex[33], text[256];
    int fd = -1, rc;
    *fd_out = -1;
    *stale_out = false;
    snprintf(dir, sizeof(dir), "%s/receiving", state_dir);
    file_name(name, file, sizeof(file));
    mig__hex(sid, 16, hex);
    if (snprintf(text, sizeof(text), "session=%s\nname=%s\npid=%ld\n", hex, name,
                 (long)getpid()) >= (int)sizeof(text))
        return -MIG_EINVAL;
    rc = mkdirs(dir);
    if (rc < 0)
        return rc;
    rc = claim_lock(dir, file, &fd);
    if (rc < 0)
        return rc;
    /* Unlocked yet naming a session: its receiver is gone. */
    *stale_out = claim_read(fd, stale_sid_out, NULL, 0) == 0;
    size_t len = strlen(text);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, len, 0) != (ssize_t)len || fsync(fd) < 0) {
        rc = mig__from_errno(errno ? errno : EIO);
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

void mig__claim_release(const char *state_dir, const char *name, int fd)
{
    char path[4096], file[256];
    if (fd < 0)
        return;
    file_name(name, file, sizeof(file));
    snprintf(path, sizeof(path), "%s/receiving/%s", state_dir, file);
    /* emptied first: a taker that opened it before the unlink finds nothing */
    if (ftruncate(fd, 0) < 0 || unlink(path) < 0)
        (void)0; /* a claim left behind only costs a harmless reap later */
    close(fd);
}

int mig__claim_sweep(const char *state_dir,
                     int (*fn)(void *opaque, const char *name, const uint8_t sid[16]),
                     void *opaque)
{
    char dir[4096];
    int rc = 0;
    snprintf(dir, sizeof(dir), "%s/receiving", state_dir);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : mig__from_errno(errno);
    for (struct dirent *e; (e = readdir(d));) {
        char name[256];
        uint8_t sid[16];
        int fd = -1;
        if (e->d_name[0] == '.' || claim_lock(dir, e->d_name, &fd) < 0)
            continue; /* a live receiver's */
        if (claim_read(fd, sid, name, sizeof(name)) == 0) {
            int r = fn(opaque, name, sid);
            if (r < 0) {
                /* kept for the next try */
                if (rc == 0)
                    rc = r;
                close(fd);
                continue;
            }
        }
        mig__claim_release(state_dir, e->d_name, fd);
    }
    closedir(d);
    return rc;
}

/* ---- DOMAIN_INFO ------------------------------------------------------- */

int mig__dom_info_check(const struct mig__rec_dom_info *di, struct mig__dom_info *info)
{
    memset(info, 0, sizeof(*info));
    if (!di->name[0] || di->nr_pages == 0 || di->nr_pages > MIG_MAX_GUEST_PAGES ||
        di->page_size != 4096 || di->vcpus == 0 || di->vcpus > 4096)
        return -MIG_EPROTO;
    for (const char *c = di->name; *c; c++)
        if (*c == '/' || (unsigned char)*c < 0x20 || *c == 0x7f)
            return -MIG_EPROTO;
    for (const char *c = di->config; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return -MIG_EPROTO;
    memcpy(info->name, di->name, sizeof(info->name));
    memcpy(info->config, di->config, sizeof(info->config));
    info->name[sizeof(info->name) - 1] = 0;
    info->config[sizeof(info->config) - 1] = 0;
    info->nr_pages = di->nr_pages;
    info->page_size = di->page_size;
    info->vcpus = di->vcpus;
    return 0;
}
