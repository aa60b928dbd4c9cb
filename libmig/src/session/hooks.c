/*
 * hooks.c: the hook class table on the context and the per-session set of
 * hook instances: construction from the migration's parameters, the calls
 * at each point of the session in registration order, begin/ack over the
 * control channel, routing of the destination's data records, and abort
 * exactly once for every instance that began. The contract is in hooks.h.
 *
 * Entry points: mig__hook_register(_builtins), mig__hook_arg, mig__hooks_*.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIG_LOG_MODULE "hooks"
#include "hooks.h"

struct slot {
    struct mig__hook *h;  /* owned */
    bool begun;           /* begin succeeded (or was called: abort reaches it) */
    bool acked;           /* source: BEGIN_ACK received */
    bool aborted;
};

struct mig__hooks {
    struct mig_ctx *ctx;              /* borrowed */
    struct mig__hook_env env;         /* args/info borrowed from the session */
    struct slot slot[MIG_MAX_HOOKS];
    /* Destination: channel threads read the set while the control thread
     * adds to it; a slot is complete before n publishes it. */
    atomic_uint n;
};

int mig__hook_fail(struct mig__hook *h, int rc, const char *fmt, ...)
{
    if (!h->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(h->why, sizeof(h->why), fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const char *why_of(const struct mig__hook *h, int rc)
{
    return h->why[0] ? h->why : mig_strerror(rc);
}

const char *mig__hooks_why(const struct mig__hooks *hs)
{
    for (unsigned i = 0; hs && i < atomic_load(&hs->n); i++)
        if (hs->slot[i].h->why[0])
            return hs->slot[i].h->why;
    return "";
}

int mig__hook_register(struct mig_ctx *ctx, const struct mig__hook_class *cls)
{
    if (!cls || !cls->name || !*cls->name || !cls->src_new || !cls->dst_new) {
        MIG_LOG(ctx, ERROR, "hook class without a name or constructors");
        return -MIG_EINVAL;
    }
    for (unsigned i = 0; i < ctx->n_hook_classes; i++) {
        const struct mig__hook_class *c = ctx->hook_classes[i];
        if (strcmp(c->name, cls->name) == 0 || c->id == cls->id)
            return -MIG_EEXIST;
    }
    if (ctx->n_hook_classes >= MIG_MAX_HOOK_CLASSES)
        return -MIG_ENOMEM;
    ctx->hook_classes[ctx->n_hook_classes++] = cls;
    return 0;
}

extern const struct mig__hook_class mig__blk_hook_class; /* blk/blk-hook.c */
int mig__net_hook_register(struct mig_ctx *ctx);               /* net-handoff/hook.c */

int mig__hook_register_builtins(struct mig_ctx *ctx)
{
    int rc = mig__hook_register(ctx, &mig__blk_hook_class);
    if (rc == 0)
        rc = mig__net_hook_register(ctx);
    return rc;
}

const char *mig__hook_arg(const struct mig__hook_env *env, const char *cls, const char *key,
                          unsigned idx)
{
    size_t lc = strlen(cls), lk = strlen(key);
    for (const char *const *a = env->args; a && *a; a++) {
        const char *s = *a;
        if (strncmp(s, cls, lc) != 0 || s[lc] != ':' || strncmp(s + lc + 1, key, lk) != 0 ||
            s[lc + 1 + lk] != '=')
            continue;
        if (idx-- == 0)
            return s + lc + 1 + lk + 1;
    }
    return NULL;
}

static int set_new(const struct mig__hook_env *env, struct mig__hooks **hs_out)
{
    struct mig__hooks *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return -MIG_ENOMEM;
    hs->ctx = env->ctx;
    hs->env = *env;
    atomic_init(&hs->n, 0);
    *hs_out = hs;
    return 0;
}

int mig__hooks_src_new(const struct mig__hook_env *env, struct mig__hooks **hs_out)
{
    struct mig__hooks *hs = NULL;
    int rc = set_new(env, &hs);
    if (rc < 0)
        return rc;
    struct mig_ctx *ctx = env->ctx;
    for (unsigned i = 0; i < ctx->n_hook_classes; i++) {
        const struct mig__hook_class *cls = ctx->hook_classes[i];
        struct mig__hook *h = NULL;
        rc = cls->src_new(env, &h);
        if (rc < 0) {
            MIG_LOG(ctx, ERROR, "hook %s: %s", cls->name, mig_strerror(rc));
            mig__hooks_free(hs);
            return rc;
        }
        if (!h)
            continue;
        h->cls = cls;
        unsigned n = atomic_load(&hs->n);
        hs->slot[n].h = h;
        atomic_store(&hs->n, n + 1);
        MIG_LOG(ctx, INFO, "hook %s attached", cls->name);
    }
    *hs_out = hs;
    return 0;
}

int mig__hooks_dst_new(const struct mig__hook_env *env, struct mig__hooks **hs_out)
{
    return set_new(env, hs_out);
}

void mig__hooks_free(struct mig__hooks *hs)
{
    if (!hs)
        return;
    for (unsigned i = 0; i < atomic_load(&hs->n); i++) {
        struct mig__hook *h = hs->slot[i].h;
        if (h && h->ops->free)
            h->ops->free(h);
    }
    free(hs);
}

unsigned mig__hooks_count(const struct mig__hooks *hs)
{
    return hs ? atomic_load(&hs->n) : 0;
}

/* ---- source ------------------------------------------------------------ */

int mig__hooks_src_begin(struct mig__hooks *hs, struct mig__hook_io *io, struct mig__stream *ctrl)
{
    for (unsigned i = 0; i < atomic_load(&hs->n); i++) {
        struct slot *sl = &hs->slot[i];
        void *blob = NULL;
        size_t len = 0;
        sl->begun = true;
        int rc = sl->h->ops->src_begin ? sl->h->ops->src_begin(sl->h, io, &blob, &len) : 0;
        if (rc == 0 && len > MIG_HOOK_BLOB_MAX)
            rc = -MIG_ETOOBIG;
        if (rc < 0) {
            free(blob);
            MIG_LOG(hs->ctx, ERROR, "hook %s: begin: %s", sl->h->cls->name, why_of(sl->h, rc));
            return rc;
        }
        mig__rec_put_hook_data(ctrl, sl->h->cls->id, MIG_HOOK_KIND_BEGIN, blob, len);
        free(blob);
    }
    return 0;
}

int mig__hooks_src_ack(struct mig__hooks *hs, const struct mig__rec *rec)
{
    uint32_t id, kind;
    const void *data;
    size_t len;
    int rc = mig__rec_get_hook_data(rec, &id, &kind, &data, &len);
    if (rc < 0)
        return rc;
    if (kind != MIG_HOOK_KIND_BEGIN_ACK || len != 0)
        return -MIG_EPROTO;
    for (unsigned i = 0; i < atomic_load(&hs->n); i++) {
        struct slot *sl = &hs->slot[i];
        if (sl->h->cls->id == id && sl->begun && !sl->acked) {
            sl->acked = true;
            return 0;
        }
    }
    return -MIG_EPROTO;
}

/* Call one source op on every hook in order; stop at the first failure. */
#define EACH_SRC(hs, OP, ...)                                                                      \
    do {                                                                                           \
        for (unsigned i_ = 0; i_ < atomic_load(&(hs)->n); i_++) {                                  \
            struct mig__hook *h_ = (hs)->slot[i_].h;                                               \
            if (!h_->ops->OP)                                                                      \
                continue;                                                                          \
            int rc_ = h_->ops->OP(h_, ##__VA_ARGS__);                                              \
            if (rc_ < 0) {                                                                         \
                MIG_LOG((hs)->ctx, ERROR, "hook %s: " #OP ": %s", h_->cls->name,                   \
                        why_of(h_, rc_));                                                        \
                return rc_;                                                                        \
            }                                                                                      \
        }                                                                                          \
        return 0;                                                                                  \
    } while (0)

int mig__hooks_src_round(struct mig__hooks *hs, uint32_t round, bool final)
{
    EACH_SRC(hs, src_round, round, final);
}

uint64_t mig__hooks_src_pending_bytes(struct mig__hooks *hs)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < atomic_load(&hs->n); i++) {
        struct mig__hook *h = hs->slot[i].h;
        if (h->ops->src_pending_bytes)
            sum += h->ops->src_pending_bytes(h);
    }
    return sum;
}

void mig__hooks_src_stats(struct mig__hooks *hs, struct mig_stats *st)
{
    for (unsigned i = 0; hs && i < atomic_load(&hs->n); i++) {
        struct mig__hook *h = hs->slot[i].h;
        if (hs->slot[i].begun && h->ops->src_stats)
            h->ops->src_stats(h, st);
    }
}

int mig__hooks_src_stopcopy(struct mig__hooks *hs)
{
    EACH_SRC(hs, src_stopcopy);
}

int mig__hooks_src_ready(struct mig__hooks *hs)
{
    EACH_SRC(hs, src_ready);
}

/* After COMMIT nothing is undone: every hook runs, the first error is kept. */
#define ALL_AFTER_COMMIT(hs, OP)                                                                   \
    do {                                                                                           \
        int first_ = 0;                                                                            \
        for (unsigned i_ = 0; i_ < atomic_load(&(hs)->n); i_++) {                                  \
            struct mig__hook *h_ = (hs)->slot[i_].h;                                               \
            int rc_ = h_->ops->OP ? h_->ops->OP(h_) : 0;                                           \
            if (rc_ < 0) {                                                                         \
                MIG_LOG((hs)->ctx, ERROR, "hook %s: " #OP " after COMMIT: %s", h_->cls->name,      \
                        why_of(h_, rc_));                                                        \
                if (!first_)                                                                       \
                    first_ = rc_;                                                                  \
            }                                                                                      \
        }                                                                                          \
        return first_;                                                                             \
    } while (0)

int mig__hooks_src_commit(struct mig__hooks *hs)
{
    ALL_AFTER_COMMIT(hs, src_commit);
}

int mig__hooks_src_settle(struct mig__hooks *hs)
{
    ALL_AFTER_COMMIT(hs, src_settle);
}

/* Every begun instance's abort, once, last begun first. */
static void abort_all(struct mig__hooks *hs, int why, bool source)
{
    if (!hs)
        return;
    for (unsigned i = atomic_load(&hs->n); i-- > 0;) {
        struct slot *sl = &hs->slot[i];
        if (!sl->begun || sl->aborted)
            continue;
        sl->aborted = true;
        void (*op)(struct mig__hook *, int) =
            source ? sl->h->ops->src_abort : sl->h->ops->dst_abort;
        if (op)
            op(sl->h, why);
    }
}

void mig__hooks_src_abort(struct mig__hooks *hs, int why)
{
    abort_all(hs, why, true);
}

/* ---- destination ------------------------------------------------------- */

int mig__hooks_dst_begin(struct mig__hooks *hs, const struct mig__rec *rec,
                         struct mig__stream *ctrl)
{
    uint32_t id, kind;
    const void *data;
    size_t len;
    int rc = mig__rec_get_hook_data(rec, &id, &kind, &data, &len);
    if (rc < 0)
        return rc;
    if (kind != MIG_HOOK_KIND_BEGIN || len > MIG_HOOK_BLOB_MAX)
        return -MIG_EPROTO;
    unsigned n = atomic_load(&hs->n);
    for (unsigned i = 0; i < n; i++)
        if (hs->slot[i].h->cls->id == id)
            return -MIG_EPROTO; /* one instance per class */
    if (n >= MIG_MAX_HOOKS)
        return -MIG_EPROTO;
    const struct mig__hook_class *cls = NULL;
    for (unsigned i = 0; i < hs->ctx->n_hook_classes; i++)
        if (hs->ctx->hook_classes[i]->id == id)
            cls = hs->ctx->hook_classes[i];
    if (!cls) {
        MIG_LOG(hs->ctx, ERROR, "the source uses hook %" PRIu32 ", which this build lacks", id);
        return -MIG_ENOTSUP;
    }
    struct mig__hook *h = NULL;
    rc = cls->dst_new(&hs->env, &h);
    if (rc < 0)
        return rc;
    if (!h)
        return -MIG_ENOTSUP;
    h->cls = cls;
    struct slot *sl = &hs->slot[n];
    sl->h = h;
    sl->begun = true;
    atomic_store(&hs->n, n + 1); /* abort and free reach it from now on */
    rc = h->ops->dst_begin ? h->ops->dst_begin(h, data, len) : 0;
    if (rc < 0)
        return rc;
    mig__rec_put_hook_data(ctrl, id, MIG_HOOK_KIND_BEGIN_ACK, NULL, 0);
    return 0;
}

int mig__hooks_dst_record(struct mig__hooks *hs, const struct mig__rec *rec)
{
    uint32_t id = MIG_HOOK_ID_BLK;
    if (rec->type == MIG_REC_HOOK_DATA) {
        uint32_t kind;
        const void *data;
        size_t len;
        int rc = mig__rec_get_hook_data(rec, &id, &kind, &data, &len);
        if (rc < 0)
            return rc;
        if (kind < MIG_HOOK_KIND_CLASS)
            return -MIG_EPROTO;
    } else if (rec->type != MIG_REC_BLOCK_EXTENT) {
        return -MIG_EPROTO;
    }
    unsigned n = atomic_load(&hs->n);
    for (unsigned i = 0; i < n; i++) {
        struct mig__hook *h = hs->slot[i].h;
        if (h->cls->id == id)
            return h->ops->dst_record ? h->ops->dst_record(h, rec) : -MIG_EPROTO;
    }
    return -MIG_EPROTO;
}

int mig__hooks_dst_ready(struct mig__hooks *hs)
{
    for (unsigned i = 0; i < atomic_load(&hs->n); i++) {
        struct mig__hook *h = hs->slot[i].h;
        int rc = h->ops->dst_ready ? h->ops->dst_ready(h) : 0;
        if (rc < 0) {
            MIG_LOG(hs->ctx, ERROR, "hook %s: ready: %s", h->cls->name, why_of(h, rc));
            return rc;
        }
    }
    return 0;
}

int mig__hooks_dst_devices(struct mig__hooks *hs, const char *vifs)
{
    int first = 0;
    for (unsigned i = 0; hs && i < atomic_load(&hs->n); i++) {
        struct mig__hook *h = hs->slot[i].h;
        int rc = h->ops->dst_devices ? h->ops->dst_devices(h, vifs) : 0;
        if (rc < 0) {
            MIG_LOG(hs->ctx, WARN, "hook %s: the new domain's devices: %s", h->cls->name,
                    why_of(h, rc));
            if (first == 0)
                first = rc;
        }
    }
    return first;
}

int mig__hooks_dst_commit(struct mig__hooks *hs)
{
    ALL_AFTER_COMMIT(hs, dst_commit);
}

void mig__hooks_dst_abort(struct mig__hooks *hs, int why)
{
    abort_all(hs, why, false);
}
