/*
 * blk-hook.c: the block mirror as an engine hook (class "blk", wire id
 * MIG_HOOK_ID_BLK; session/hooks.h). Source: the managed disks this process
 * serves for the domain (mig__blk_register) are started at begin, sent each
 * round before the pages, switched to synchronous forwarding once the bulk
 * pass is done, frozen at stop-and-copy (the final round sends the rest)
 * and handed over at COMMIT (the export then refuses writes so clients
 * reconnect to the destination). Destination: --disk-map SRC=DST
 * ("blk:map=SRC=DST") names where each source disk goes.
 *
 * Begin blob (little-endian): u32 version (1), u32 ndisks (1..16), then per
 * disk: u64 size, u64 allocated, u32 name_len (1..4095), u32 0, name bytes
 * (the source path), zero-padded to 8.
 *
 * Entry points: mig__blk_hook_class, mig__blk_register/unregister.
 */
#include <config.h>

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"

/* A disk the source side mirrors: one this process serves (a mirror,
 * registered on the context) or one a managed-disk server of this host
 * serves (reached over its control socket, remote.c). */
struct disk_ops {
    int (*start)(void *d, struct mig__hook_io *io, uint32_t id);
    int (*round)(void *d, bool final);
    void (*set_forwarding)(void *d, bool on);
    int (*stats)(void *d, struct mig__blk_stats *st);
    int (*freeze)(void *d);
    int (*ready)(void *d);
    int (*settle)(void *d, bool moved); /* tracking off, hold lifted (moved: writes refused) */
    const char *(*path)(void *d);
    void (*free)(void *d);
};

static int l_start(void *d, struct mig__hook_io *io, uint32_t id)
{
    return mig__blk_mirror_start(d, io, id);
}
static int l_round(void *d, bool final) { return mig__blk_mirror_round(d, final); }
static void l_fwd(void *d, bool on) { mig__blk_mirror_set_forwarding(d, on); }
static int l_stats(void *d, struct mig__blk_stats *st)
{
    mig__blk_mirror_stats(d, st);
    return 0;
}
static int l_freeze(void *d)
{
    mig__blk_mirror_freeze(d);
    return 0;
}
static int l_settle(void *d, bool moved)
{
    mig__blk_mirror_stop(d);
    mig__blk_mirror_release(d, moved);
    return 0;
}
static const char *l_path(void *d) { return mig__blk_mirror_path(d); }

static const struct disk_ops local_ops = {
    .start = l_start, .round = l_round, .set_forwarding = l_fwd, .stats = l_stats,
    .freeze = l_freeze, .settle = l_settle, .path = l_path,
};

static int r_start(void *d, struct mig__hook_io *io, uint32_t id)
{
    return mig__blk_remote_start(d, io, id);
}
static int r_round(void *d, bool final) { return mig__blk_remote_round(d, final); }
static void r_fwd(void *d, bool on) { mig__blk_remote_set_forwarding(d, on); }
static int r_stats(void *d, struct mig__blk_stats *st) { return mig__blk_remote_stats(d, st); }
static int r_freeze(void *d) { return mig__blk_remote_freeze(d); }
static int r_ready(void *d) { return mig__blk_remote_ready(d); }
static int r_settle(void *d, bool moved)
{
    if (moved)
        return mig__blk_remote_release(d, true);
    mig__blk_remote_abort(d);
    return 0;
}
static const char *r_path(void *d) { return mig__blk_remote_path(d); }
static void r_free(void *d) { mig__blk_remote_free(d); }

static int q_start(void *d, struct mig__hook_io *io, uint32_t id)
{
    return mig__blk_qsrc_start(d, io, id);
}
static int q_round(void *d, bool final) { return mig__blk_qsrc_round(d, final); }
static void q_fwd(void *d, bool on) { (void)d, (void)on; } /* write-blocking from the start */
static int q_stats(void *d, struct mig__blk_stats *st) { return mig__blk_qsrc_stats(d, st); }
static int q_freeze(void *d) { return mig__blk_qsrc_freeze(d); }
static int q_settle(void *d, bool moved)
{
    (void)moved; /* the domain keeps its own disk until it is destroyed */
    mig__blk_qsrc_settle(d);
    return 0;
}
static const char *q_path(void *d) { return mig__blk_qsrc_name(d); }
static void q_free(void *d) { mig__blk_qsrc_free(d); }

static const struct disk_ops qdisk_ops = {
    .start = q_start, .round = q_round, .set_forwarding = q_fwd, .stats = q_stats,
    .freeze = q_freeze, .settle = q_settle, .path = q_path, .free = q_free,
};

static const struct disk_ops remote_ops = {
    .start = r_start, .round = r_round, .set_forwarding = r_fwd, .stats = r_stats,
    .freeze = r_freeze, .ready = r_ready, .settle = r_settle, .path = r_path, .free = r_free,
};

struct blk_disk {
    const struct disk_ops *ops;
    void *d;                    /* local: borrowed mirror; remote: owned */
};

struct blk_hook {
    struct mig__hook base;
    struct mig_ctx *ctx;                    /* borrowed */
    unsigned n;
    struct blk_disk disk[MIG_BLK_MAX_DISKS]; /* source */
    struct mig__blk_target *t[MIG_BLK_MAX_DISKS];    /* destination: owned */
    struct mig__hook_env env;               /* destination: args borrowed */
    char made_dir[PATH_MAX];                /* destination: made for --disk-dir, "" */
    /* source: the disks' figures as of the last round or switchover step
     * (src_stats reads them without waiting on a disk's server) */
    pthread_mutex_t st_lock;
    struct mig__blk_stats st[MIG_BLK_MAX_DISKS];
};

/* Refresh the cached figures of every disk (the session's thread). */
static void cache_stats(struct blk_hook *b)
{
    for (unsigned i = 0; i < b->n; i++) {
        struct mig__blk_stats st;
        if (b->disk[i].ops->stats(b->disk[i].d, &st) < 0)
            continue;
        pthread_mutex_lock(&b->st_lock);
        b->st[i] = st;
        pthread_mutex_unlock(&b->st_lock);
    }
}

static void src_stats(struct mig__hook *h, struct mig_stats *out)
{
    struct blk_hook *b = (struct blk_hook *)h;
    pthread_mutex_lock(&b->st_lock);
    for (unsigned i = 0; i < b->n; i++) {
        out->disk_bytes += b->st[i].size;
        out->disk_sent_bytes += b->st[i].sent_bytes + b->st[i].zero_bytes;
        out->disk_forwarded_bytes += b->st[i].forwarded_bytes;
        out->disk_final_bytes += b->st[i].final_bytes;
        out->disk_forwarding += b->st[i].forwarding;
    }
    pthread_mutex_unlock(&b->st_lock);
}

int mig__blk_register(struct mig_ctx *ctx, const char *domain, struct mig__blk_mirror *m)
{
    if (strlen(domain) >= sizeof(ctx->blk_disks[0].domain))
        return -MIG_EINVAL;
    if (ctx->n_blk_disks >= MIG_MAX_BLK_DISKS)
        return -MIG_ENOMEM;
    strcpy(ctx->blk_disks[ctx->n_blk_disks].domain, domain);
    ctx->blk_disks[ctx->n_blk_disks++].m = m;
    return 0;
}

void mig__blk_unregister(struct mig_ctx *ctx, struct mig__blk_mirror *m)
{
    for (unsigned i = 0; i < ctx->n_blk_disks; i++) {
        if (ctx->blk_disks[i].m != m)
            continue;
        ctx->blk_disks[i] = ctx->blk_disks[--ctx->n_blk_disks];
        return;
    }
}

/* ---- source ------------------------------------------------------------- */

#define DISK_PATH(b, i) ((b)->disk[i].ops->path((b)->disk[i].d))

static int src_begin(struct mig__hook *h, struct mig__hook_io *io, void **blob_out,
                     size_t *len_out)
{
    struct blk_hook *b = (struct blk_hook *)h;
    struct mig__blk_stats st[MIG_BLK_MAX_DISKS];
    /* start every disk first: a remote disk's path is known from then on */
    for (unsigned i = 0; i < b->n; i++) {
        int rc = b->disk[i].ops->start(b->disk[i].d, io, i);
        if (rc == 0)
            rc = b->disk[i].ops->stats(b->disk[i].d, &st[i]);
        if (rc < 0)
            return mig__hook_fail(h, rc, "disk %s: %s", DISK_PATH(b, i),
                                  rc == -MIG_EBUSY ? "another migration mirrors it"
                                  : rc == -MIG_ECANCELLED ? "it has moved to another host"
                                                          : mig_strerror(rc));
    }
    size_t len = 8;
    for (unsigned i = 0; i < b->n; i++)
        len += 24 + ((strlen(DISK_PATH(b, i)) + 7) & ~(size_t)7);
    uint8_t *blob = calloc(1, len), *p = blob;
    if (!blob)
        return -MIG_ENOMEM;
    uint32_t v = 1, n = b->n;
    memcpy(p, &v, 4);
    memcpy(p + 4, &n, 4);
    p += 8;
    for (unsigned i = 0; i < b->n; i++) {
        const char *name = DISK_PATH(b, i);
        uint32_t nl = (uint32_t)strlen(name);
        memcpy(p, &st[i].size, 8);
        memcpy(p + 8, &st[i].allocated, 8);
        memcpy(p + 16, &nl, 4);
        memcpy(p + 24, name, nl);
        p += 24 + ((nl + 7) & ~7u);
    }
    *blob_out = blob;
    *len_out = len;
    pthread_mutex_lock(&b->st_lock);
    memcpy(b->st, st, sizeof(st[0]) * b->n);
    pthread_mutex_unlock(&b->st_lock);
    return 0;
}

/* A fault point's verdict as a hook error (drop and corrupt have no link
 * of their own here: they fail the same way). */
static int blk_fault(struct blk_hook *b, const char *point, long arg)
{
    int rc = mig__fault(b->ctx, point, arg);
    if (rc == 0)
        return 0;
    return mig__hook_fail(&b->base, rc < 0 ? rc : -MIG_EIO, "fault injection at %s", point);
}

static int src_round(struct mig__hook *h, uint32_t round, bool final)
{
    struct blk_hook *b = (struct blk_hook *)h;
    /* the block final sync: the guest is suspended, the residue follows */
    int frc = final ? blk_fault(b, "src-blk-final", round) : 0;
    if (frc < 0)
        return frc;
    for (unsigned i = 0; i < b->n; i++) {
        const struct disk_ops *o = b->disk[i].ops;
        void *d = b->disk[i].d;
        struct mig__blk_stats st;
        int rc = o->round(d, final);
        /* Once the bulk pass is done, writes to regions in sync are
         * forwarded before their ack, and one more pass drains what is out
         * of sync, so the switchover finds almost nothing left (DRBD: resync
         * done, then connected, protocol C). Waiting for a small residue
         * first let the memory engine switch over before forwarding began
         * (a 30 MiB disk residue after the suspend, seen in CI). */
        if (rc == 0 && !final)
            rc = o->stats(d, &st);
        if (rc == 0 && !final && !st.forwarding) {
            o->set_forwarding(d, true);
            rc = o->round(d, false);
        }
        if (rc < 0)
            return rc == -MIG_ECANCELLED
                       ? rc
                       : mig__hook_fail(h, rc, "disk %s: round %u: %s", DISK_PATH(b, i), round,
                                        mig_strerror(rc));
    }
    cache_stats(b);
    return 0;
}

static uint64_t src_pending(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    uint64_t sum = 0;
    for (unsigned i = 0; i < b->n; i++) {
        struct mig__blk_stats st;
        if (b->disk[i].ops->stats(b->disk[i].d, &st) == 0)
            sum += st.pending_bytes;
    }
    return sum;
}

static int src_stopcopy(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    /* the guest is suspended; writes still coming (a client of the export
     * that is not the guest) wait until COMMIT or abort decides */
    for (unsigned i = 0; i < b->n; i++) {
        int rc = b->disk[i].ops->freeze(b->disk[i].d);
        if (rc < 0)
            return mig__hook_fail(h, rc, "disk %s: switchover hold: %s", DISK_PATH(b, i),
                                  mig_strerror(rc));
    }
    return 0;
}

static int src_ready(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    for (unsigned i = 0; i < b->n; i++) {
        int rc = b->disk[i].ops->ready ? b->disk[i].ops->ready(b->disk[i].d) : 0;
        if (rc < 0)
            return mig__hook_fail(h, rc, "disk %s: %s", DISK_PATH(b, i), mig_strerror(rc));
    }
    return 0;
}

static int src_commit(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    int first = 0;
    cache_stats(b);
    for (unsigned i = 0; i < b->n; i++) {
        struct mig__blk_stats st;
        pthread_mutex_lock(&b->st_lock);
        st = b->st[i];
        pthread_mutex_unlock(&b->st_lock);
        MIG_LOG(b->ctx, INFO,
                    "disk %u (%s) moved: %" PRIu64 " MiB of %" PRIu64
                    " MiB allocated sent in %u rounds, %" PRIu64 " KiB forwarded in %" PRIu64
                    " writes, %" PRIu64 " KiB after the suspend",
                    i, DISK_PATH(b, i), st.sent_bytes >> 20, st.allocated >> 20, st.rounds,
                    st.forwarded_bytes >> 10, st.forwarded_writes, st.final_bytes >> 10);
        int rc = b->disk[i].ops->settle(b->disk[i].d, true);
        if (rc < 0 && !first)
            first = mig__hook_fail(h, rc, "disk %s: hand-over after COMMIT: %s",
                                   DISK_PATH(b, i), mig_strerror(rc));
    }
    return first;
}

static void src_abort(struct mig__hook *h, int why)
{
    struct blk_hook *b = (struct blk_hook *)h;
    (void)why;
    for (unsigned i = 0; i < b->n; i++)
        b->disk[i].ops->settle(b->disk[i].d, false);
}

static void hook_free(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    for (unsigned i = 0; i < b->n; i++) {
        mig__blk_target_close(b->t[i]); /* NULL on the source, closed after commit */
        if (b->disk[i].ops && b->disk[i].ops->free)
            b->disk[i].ops->free(b->disk[i].d);
    }
    pthread_mutex_destroy(&b->st_lock);
    free(b);
}

static const struct mig__hook_ops src_ops = {
    .src_begin = src_begin,
    .src_round = src_round,
    .src_pending_bytes = src_pending,
    .src_stopcopy = src_stopcopy,
    .src_ready = src_ready,
    .src_commit = src_commit,
    .src_abort = src_abort,
    .src_stats = src_stats,
    .free = hook_free,
};

static int ctl_filter(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && e->d_name[0] != '.' && strcmp(e->d_name + n - 4, ".ctl") == 0;
}

/* The managed disks a managed-disk server of this host serves for the
 * domain: DIR/DOMAIN/NAME.ctl, DIR = "blk:dir=" or STATE_DIR/disks. */
static int add_remote_disks(const struct mig__hook_env *env, struct blk_hook *b)
{
    char dir[PATH_MAX], path[PATH_MAX];
    const char *base = mig__hook_arg(env, "blk", "dir", 0);
    struct dirent **ents = NULL;
    int rc = 0, n;
    if (base)
        n = snprintf(dir, sizeof(dir), "%s/%s", base, env->info->name);
    else
        n = snprintf(dir, sizeof(dir), "%s/disks/%s",
                     env->state_dir ? env->state_dir : "/var/lib/migrate-live", env->info->name);
    if (n < 0 || (size_t)n >= sizeof(dir) || strchr(env->info->name, '/'))
        return 0;
    n = scandir(dir, &ents, ctl_filter, alphasort);
    if (n < 0)
        return 0; /* no managed disk for this domain */
    for (int i = 0; i < n; i++) {
        struct mig__blk_remote *r = NULL;
        if (rc == 0 && b->n >= MIG_BLK_MAX_DISKS)
            rc = mig__hook_fail(&b->base, -MIG_EINVAL, "%s: more than %u managed disks", dir,
                                MIG_BLK_MAX_DISKS);
        if (rc == 0 && snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) >=
                           (int)sizeof(path))
            rc = -MIG_EINVAL;
        if (rc == 0 && (rc = mig__blk_remote_open(b->ctx, path, &r)) < 0)
            rc = mig__hook_fail(&b->base, rc,
                                "managed disk %s of %s: its server does not answer (%s): "
                                "start it (xl-migrate-live disk-serve) or remove the stale "
                                "socket",
                                path, env->info->name, mig_strerror(rc));
        if (r) {
            b->disk[b->n].ops = &remote_ops;
            b->disk[b->n++].d = r;
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

/* Disks the domain's own QEMU serves, named by "blk:qdisk=SOCKET,DEVICE[,NAME]". */
static int add_qdisk_disks(const struct mig__hook_env *env, struct blk_hook *b)
{
    const char *spec;
    for (unsigned i = 0; (spec = mig__hook_arg(env, "blk", "qdisk", i)); i++) {
        struct mig__blk_qsrc *q = NULL;
        if (b->n >= MIG_BLK_MAX_DISKS)
            return mig__hook_fail(&b->base, -MIG_EINVAL, "more than %u disks",
                                  MIG_BLK_MAX_DISKS);
        int rc = mig__blk_qsrc_open(b->ctx, spec, &q);
        if (rc < 0)
            return mig__hook_fail(&b->base, rc, "qdisk %s: %s", spec, mig_strerror(rc));
        b->disk[b->n].ops = &qdisk_ops;
        b->disk[b->n++].d = q;
    }
    return 0;
}

static int src_new(const struct mig__hook_env *env, struct mig__hook **h_out)
{
    struct mig_ctx *ctx = env->ctx;
    struct blk_hook *b = calloc(1, sizeof(*b));
    *h_out = NULL;
    if (!b)
        return -MIG_ENOMEM;
    b->base.ops = &src_ops;
    b->ctx = ctx;
    pthread_mutex_init(&b->st_lock, NULL);
    for (unsigned i = 0; i < ctx->n_blk_disks; i++) {
        if (strcmp(ctx->blk_disks[i].domain, env->info->name) != 0)
            continue;
        b->disk[b->n].ops = &local_ops;
        b->disk[b->n++].d = ctx->blk_disks[i].m;
    }
    int rc = add_remote_disks(env, b);
    if (rc == 0)
        rc = add_qdisk_disks(env, b);
    if (rc < 0) {
        if (b->base.why[0])
            MIG_LOG(ctx, ERROR, "%s", b->base.why);
        hook_free(&b->base);
        return rc;
    }
    if (b->n == 0) {
        hook_free(&b->base);
        return 0;
    }
    *h_out = &b->base;
    return 0;
}

/* ---- destination ---------------------------------------------------------- */

/* The DST of "blk:map=SRC=DST" for a source path (matched whole, or by
 * file name when SRC has no '/'). */
static const char *map_for(const struct mig__hook_env *env, const char *src, char *buf,
                           size_t len)
{
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    const char *v;
    for (unsigned i = 0; (v = mig__hook_arg(env, "blk", "map", i)); i++) {
        const char *eq = strchr(v, '=');
        if (!eq || (size_t)(eq - v) >= len)
            continue;
        memcpy(buf, v, (size_t)(eq - v));
        buf[eq - v] = 0;
        if (strcmp(buf, src) == 0 || (!strchr(buf, '/') && strcmp(buf, base) == 0))
            return eq + 1;
    }
    return NULL;
}

static int dst_begin(struct mig__hook *h, const void *blob, size_t len)
{
    struct blk_hook *b = (struct blk_hook *)h;
    const uint8_t *p = blob, *end = p + len;
    uint32_t v, n;
    char src[PATH_MAX], key[PATH_MAX];
    if (len < 8)
        return mig__hook_fail(h, -MIG_EPROTO, "malformed disk list");
    memcpy(&v, p, 4);
    memcpy(&n, p + 4, 4);
    if (v != 1 || n == 0 || n > MIG_BLK_MAX_DISKS)
        return mig__hook_fail(h, -MIG_EPROTO, "malformed disk list");
    p += 8;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t size, allocated;
        uint32_t nl;
        if (end - p < 24)
            return mig__hook_fail(h, -MIG_EPROTO, "malformed disk list");
        memcpy(&size, p, 8);
        memcpy(&allocated, p + 8, 8);
        memcpy(&nl, p + 16, 4);
        size_t padded = ((size_t)nl + 7) & ~(size_t)7;
        if (nl == 0 || nl >= sizeof(src) || (size_t)(end - p - 24) < padded || allocated > size ||
            size == 0 || size > (1ull << 50))
            return mig__hook_fail(h, -MIG_EPROTO, "malformed disk list");
        memcpy(src, p + 24, nl);
        src[nl] = 0;
        if (memchr(src, 0, nl))
            return mig__hook_fail(h, -MIG_EPROTO, "malformed disk list");
        p += 24 + padded;
        const char *dst = map_for(&b->env, src, key, sizeof(key));
        char def[PATH_MAX];
        const char *tdir = mig__hook_arg(&b->env, "blk", "target-dir", 0);
        if (!dst && tdir) {
            /* --disk-dir DIR: DIR/DOMAIN/FILE, FILE the source's file name */
            const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
            const char *dom = b->env.info ? b->env.info->name : "";
            int dn = snprintf(def, sizeof(def), "%s/%s", tdir, dom);
            if (dn < 0 || (size_t)dn >= sizeof(def) || !dom[0] || strchr(dom, '/') ||
                dom[0] == '.' || !base[0] || base[0] == '.')
                return mig__hook_fail(h, -MIG_EINVAL, "cannot place disk %s under %s", src,
                                      tdir);
            mkdir(tdir, 0700);
            if (mkdir(def, 0700) == 0 && !b->made_dir[0])
                snprintf(b->made_dir, sizeof(b->made_dir), "%s", def);
            dn = snprintf(def, sizeof(def), "%s/%s/%s", tdir, dom, base);
            if (dn < 0 || (size_t)dn >= sizeof(def))
                return mig__hook_fail(h, -MIG_EINVAL, "cannot place disk %s under %s", src,
                                      tdir);
            dst = def;
        }
        if (!dst)
            return mig__hook_fail(h, -MIG_EINVAL,
                                  "no --disk-map for the domain's disk %s on this host "
                                  "(receive --disk-map %s=/path/to/target)",
                                  src, src);
        char why[sizeof(h->why)] = "";
        int rc = mig__blk_target_open(b->ctx, dst, size, allocated, &b->t[i], why, sizeof(why));
        if (rc < 0)
            return mig__hook_fail(h, rc, "%s", why[0] ? why : mig_strerror(rc));
        b->n = i + 1;
    }
    return p == end ? 0 : mig__hook_fail(h, -MIG_EPROTO, "malformed disk list");
}

static int dst_record(struct mig__hook *h, const struct mig__rec *rec)
{
    struct blk_hook *b = (struct blk_hook *)h;
    int frc = blk_fault(b, "dest-blk-write", rec->type);
    if (frc < 0)
        return frc;
    if (rec->type == MIG_REC_BLOCK_EXTENT) {
        uint32_t disk;
        uint64_t off;
        const void *data;
        size_t len;
        int rc = mig__rec_get_block_extent(rec, &disk, &off, &data, &len);
        if (rc < 0)
            return rc;
        if (disk >= b->n || !b->t[disk]) /* none after commit */
            return -MIG_EPROTO;
        return mig__blk_target_write(b->t[disk], off, data, len);
    }
    uint32_t id, kind, disk;
    uint64_t off, zlen;
    const void *data;
    size_t len;
    int rc = mig__rec_get_hook_data(rec, &id, &kind, &data, &len);
    if (rc < 0)
        return rc;
    if (kind != MIG_BLK_KIND_ZERO || len != 24)
        return -MIG_EPROTO;
    memcpy(&disk, data, 4);
    memcpy(&off, (const uint8_t *)data + 8, 8);
    memcpy(&zlen, (const uint8_t *)data + 16, 8);
    if (disk >= b->n || !b->t[disk])
        return -MIG_EPROTO;
    return mig__blk_target_zero(b->t[disk], off, zlen);
}

static int dst_ready(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    int frc = blk_fault(b, "dest-blk-ready", 0);
    if (frc < 0)
        return frc;
    for (unsigned i = 0; i < b->n; i++) {
        int rc = mig__blk_target_sync(b->t[i]);
        if (rc < 0)
            return mig__hook_fail(h, rc, "disk %u: fdatasync: %s", i, mig_strerror(rc));
    }
    return 0;
}

/* The domain runs here now: its disks are complete. Their markers go at
 * once (closing the targets), not when the session is freed: a receiver
 * that dies after COMMIT (before its COMMIT-ACK, say) must not leave a
 * committed domain's disk marked incomplete, which the next receiver would
 * take for a leftover to replace. */
static int dst_commit(struct mig__hook *h)
{
    struct blk_hook *b = (struct blk_hook *)h;
    for (unsigned i = 0; i < b->n; i++) {
        mig__blk_target_close(b->t[i]);
        b->t[i] = NULL;
    }
    return 0;
}

static void dst_abort(struct mig__hook *h, int why)
{
    struct blk_hook *b = (struct blk_hook *)h;
    (void)why;
    for (unsigned i = 0; i < b->n; i++) {
        mig__blk_target_discard(b->t[i]);
        b->t[i] = NULL;
    }
    if (b->made_dir[0])
        rmdir(b->made_dir); /* ours and empty now (a kept device or file stays) */
}

static const struct mig__hook_ops dst_ops = {
    .dst_begin = dst_begin,
    .dst_record = dst_record,
    .dst_ready = dst_ready,
    .dst_commit = dst_commit,
    .dst_abort = dst_abort,
    .free = hook_free,
};

static int dst_new(const struct mig__hook_env *env, struct mig__hook **h_out)
{
    struct blk_hook *b = calloc(1, sizeof(*b));
    if (!b)
        return -MIG_ENOMEM;
    b->base.ops = &dst_ops;
    b->ctx = env->ctx;
    pthread_mutex_init(&b->st_lock, NULL);
    b->env = *env;
    *h_out = &b->base;
    return 0;
}

const struct mig__hook_class mig__blk_hook_class = {
    .name = "blk",
    .id = MIG_HOOK_ID_BLK,
    .src_new = src_new,
    .dst_new = dst_new,
};
