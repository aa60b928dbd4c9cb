/*
 * dest.c: the destination side. Serves one session: sends this host's
 * facts, builds the incoming domain from DOMAIN_INFO, applies pages from
 * every data channel in round order (a channel may apply round N+1 only once
 * every channel has finished round N, so an older copy of a page never
 * overwrites a newer one), loads the state sent at switchover once the
 * final round is applied on every channel, answers READY,
 * and unpauses on COMMIT. Anything short of COMMIT discards the incoming
 * domain. A session that opens with RESOLVE_QUERY is answered from the
 * outcomes journal instead. While it receives a domain, the session holds
 * a claim on its name (journal.c): what a receiver that died (SIGKILL, a
 * crash) left behind is found by the next session for that name, and by a
 * listener when it starts, and removed (reap_stale).
 *
 * Entry points: mig_recv_params_init, mig_receive_fds, mig_listen_serve.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#define MIG_LOG_MODULE "dest"
#include "session-internal.h"

#define MIG_DEST_MAX_LATE 4

struct dest;

struct chan {
    struct dest *d;
    unsigned idx;
    pthread_t thread;
    bool started;
    struct mig__stream *stream;   /* borrowed from the link */
    int64_t done_round;           /* last ROUND_END seen on this channel, -1: none */
    bool finished;                /* end-of-data mark seen */
    ZSTD_DCtx *dctx;              /* owned */
    uint8_t *zbuf;                /* owned: decompressed batch */
    struct mig__placer placer;    /* PAGES straight into the domain (backend place_pages) */
};

struct dest {
    struct mig_ctx *ctx;
    const struct mig_recv_params *p;
    struct mig__link *link;       /* borrowed */
    struct mig__hv *hv;           /* owned */
    struct mig_fsm fsm;
    struct mig__dom_info info;
    bool created;
    int claim_fd;                 /* the claim on info.name, -1 when none */
    struct mig__hooks *hooks;     /* owned: instances the source began (hooks.h) */
    bool rounds_seen;             /* a ROUND_END came on the control channel */

    pthread_mutex_t lock;
    pthread_cond_t cond;          /* a channel advanced, finished or failed */
    struct chan *ch;              /* owned, nchannels entries */
    unsigned n;
    int err;                      /* first error of any channel */
    struct mig_ratelimit rl;
    /* State sent after SWITCHOVER, held until every channel has applied the
     * final round (owned copies): the control channel overtakes the data
     * channels, and a backend that streams (xen:) must get the final pages
     * before the state that ends its stream. */
    struct mig__blob late[MIG_DEST_MAX_LATE];
    unsigned nlate;
    /* Pages whose PAGES_CRC check failed (the source read them while the
     * guest rewrote them, or they were damaged in transit) until they come
     * again intact; any left once the final round is applied fail the
     * session (check_damage). A page is in at most one record per round and
     * rounds are applied in order, so the channel applying a page alone
     * sets or clears its bit. */
    _Atomic uint64_t *_Atomic damaged; /* owned, nr_pages bits; NULL until the first */
    atomic_uint_fast64_t ndamaged;     /* bits set */
    atomic_uint_fast64_t torn;         /* damaged pages seen in all (log) */
};

void mig_recv_params_init(struct mig_recv_params *p)
{
    memset(p, 0, sizeof(*p));
    p->link.channels = 0; /* as many as the source asks, up to the transport's limit */
    p->link.timeout_ms = 10000;
    p->state_dir = "/var/lib/migrate-live";
}

/* The lowest round every channel has finished (-1 if none). Caller locks. */
static int64_t completed_round(const struct dest *d)
{
    int64_t m = INT64_MAX;
    for (unsigned i = 0; i < d->n; i++)
        if (d->ch[i].done_round < m)
            m = d->ch[i].done_round;
    return m;
}

static void chan_fail(struct chan *c, int rc)
{
    struct dest *d = c->d;
    pthread_mutex_lock(&d->lock);
    if (!d->err) {
        d->err = rc;
        MIG_LOG(d->ctx, ERROR, "data channel %u: %s", c->idx, mig_strerror(rc));
    }
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* A fault-injection point: 0, or the error the caller returns. */
static int fault(struct dest *d, const char *point, long arg)
{
    int f = mig__fault(d->ctx, point, arg);
    if (f == MIG__FAULT_DROP) {
        mig__link_shutdown(d->link);
        return -MIG_EPEER;
    }
    return f;
}

/* Block until round 'round' may be applied: every channel finished round-1. */
static int wait_barrier(struct chan *c, uint32_t round)
{
    struct dest *d = c->d;
    int rc = 0;
    if ((int64_t)round != c->done_round + 1)
        return -MIG_EPROTO; /* each channel sends its rounds in order, none skipped */
    pthread_mutex_lock(&d->lock);
    while (!d->err && completed_round(d) < (int64_t)round - 1)
        pthread_cond_wait(&d->cond, &d->lock);
    rc = d->err ? -MIG_ECANCELLED : 0;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* A page record may be applied: its pages exist and its round is due
 * (waits for the barrier). */
static int pages_due(struct chan *c, uint32_t round, uint32_t count, const uint64_t *pfns)
{
    struct dest *d = c->d;
    if (count == 0 || count > MIG_PAGES_PER_BATCH)
        return -MIG_EPROTO;
    for (uint32_t i = 0; i < count; i++)
        if (pfns[i] >= d->info.nr_pages) {
            MIG_LOG_RL(d->ctx, &d->rl, ERROR, "page %" PRIu64 " beyond the guest's %" PRIu64,
                       pfns[i], d->info.nr_pages);
            return -MIG_EPROTO;
        }
    int rc = wait_barrier(c, round);
    if (rc == 0)
        rc = fault(d, "dest-pages", round);
    return rc;
}

/* A page arrived that does not match its CRC: it must come again. */
static int damage_mark(struct dest *d, uint64_t pfn)
{
    _Atomic uint64_t *bm = atomic_load(&d->damaged);
    if (!bm) {
        pthread_mutex_lock(&d->lock);
        bm = atomic_load(&d->damaged);
        if (!bm) {
            bm = calloc((d->info.nr_pages + 63) / 64, sizeof(*bm));
            atomic_store(&d->damaged, bm);
        }
        pthread_mutex_unlock(&d->lock);
        if (!bm)
            return -MIG_ENOMEM;
    }
    uint64_t bit = 1ull << (pfn & 63);
    if (!(atomic_fetch_or(&bm[pfn / 64], bit) & bit))
        atomic_fetch_add(&d->ndamaged, 1);
    atomic_fetch_add(&d->torn, 1);
    return 0;
}

/* Pages [pfn, pfn + count) arrived intact. */
static void damage_clear(struct dest *d, uint64_t pfn, uint64_t count)
{
    if (!atomic_load(&d->ndamaged))
        return; /* the usual case; a mark happened before (round barrier or this thread) */
    _Atomic uint64_t *bm = atomic_load(&d->damaged);
    while (count) {
        unsigned off = (unsigned)(pfn & 63);
        uint64_t n = 64 - off < count ? 64 - off : count;
        uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << off;
        uint64_t was = atomic_fetch_and(&bm[pfn / 64], ~mask) & mask;
        if (was)
            atomic_fetch_sub(&d->ndamaged, (uint64_t)__builtin_popcountll(was));
        pfn += n;
        count -= n;
    }
}

/* Record what a PAGES_CRC's checks found; intact pages of the other page
 * records clear their marks too. */
static int note_damage(struct dest *d, const struct mig__rec *rec, const struct mig__rec_pages *pg)
{
    if (!rec->nbad && !atomic_load(&d->ndamaged))
        return 0; /* the usual record: nothing to mark or clear */
    uint32_t b = 0;
    for (uint32_t i = 0; i < pg->count; i++) {
        if (b < rec->nbad && rec->bad[b] == i) {
            b++;
            int rc = damage_mark(d, pg->pfns[i]);
            if (rc < 0)
                return rc;
        } else {
            damage_clear(d, pg->pfns[i], 1);
        }
    }
    return 0;
}

/* mig__placer: where a PAGES record's data goes, read off the wire. */
static int chan_place(void *opaque, uint32_t round, uint32_t count, const uint64_t *pfns,
                      void **ptrs)
{
    struct chan *c = opaque;
    int rc = pages_due(c, round, count, pfns);
    if (rc == 0)
        rc = c->d->hv->ops->place_pages(c->d->hv, pfns, count, ptrs);
    return rc;
}

static int apply_pages(struct chan *c, const struct mig__rec *rec)
{
    struct dest *d = c->d;
    struct mig__rec_pages pg;
    if (rec->place_err)
        return rec->place_err;
    int rc = mig__rec_get_pages(rec, &pg);
    if (rc < 0)
        return rc;
    if (rec->placed) /* pages_due passed, the data is in place and checked */
        return note_damage(d, rec, &pg);
    rc = pages_due(c, pg.round, pg.count, pg.pfns);
    if (rc < 0)
        return rc;
    const void *data = pg.data;
    if (rec->type == MIG_REC_PAGES_ZSTD) {
        size_t want = (size_t)pg.count * MIG_PAGE_SIZE;
        if (pg.raw_len != want)
            return -MIG_EPROTO;
        size_t got = ZSTD_decompressDCtx(c->dctx, c->zbuf, want, pg.data, pg.data_len);
        if (ZSTD_isError(got) || got != want)
            return -MIG_EPROTO;
        data = c->zbuf;
    } else if (pg.data_len != pg.count * MIG_PAGE_SIZE) {
        return -MIG_EPROTO;
    }
    rc = d->hv->ops->write_pages(d->hv, pg.pfns, pg.count, data);
    return rc < 0 ? rc : note_damage(d, rec, &pg);
}

static int apply_zero_runs(struct chan *c, const struct mig__rec *rec)
{
    struct dest *d = c->d;
    struct mig__rec_zero_runs zr;
    int rc = mig__rec_get_zero_runs(rec, &zr);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < zr.nruns; i++) {
        const struct mig__zero_run *r = &zr.runs[i];
        if (r->count == 0 || r->pfn >= d->info.nr_pages || r->count > d->info.nr_pages - r->pfn)
            return -MIG_EPROTO;
    }
    rc = wait_barrier(c, zr.round);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < zr.nruns; i++) {
        rc = d->hv->ops->write_zero(d->hv, zr.runs[i].pfn, zr.runs[i].count);
        if (rc < 0)
            return rc;
        damage_clear(d, zr.runs[i].pfn, zr.runs[i].count);
    }
    return 0;
}

static void chan_round_end(struct chan *c, uint32_t round)
{
    pthread_mutex_lock(&c->d->lock);
    c->done_round = round;
    pthread_cond_broadcast(&c->d->cond);
    pthread_mutex_unlock(&c->d->lock);
}

static void chan_finish(struct chan *c)
{
    pthread_mutex_lock(&c->d->lock);
    c->finished = true;
    pthread_cond_broadcast(&c->d->cond);
    pthread_mutex_unlock(&c->d->lock);
}

/* Apply one data record. 0, 1 when the channel's end-of-data mark came, or
 * an error. */
static int chan_handle(struct chan *c, const struct mig__rec *rec)
{
    switch (rec->type) {
    case MIG_REC_PAGES:
    case MIG_REC_PAGES_ZSTD:
    case MIG_REC_PAGES_CRC:
        return apply_pages(c, rec);
    case MIG_REC_ZERO_RUNS:
        return apply_zero_runs(c, rec);
    case MIG_REC_ROUND_END: {
        uint32_t round;
        uint64_t pages;
        int rc = mig__rec_get_round_end(rec, &round, &pages);
        if (rc < 0)
            return rc;
        if ((int64_t)round != c->done_round + 1)
            return -MIG_EPROTO;
        chan_round_end(c, round);
        return 0;
    }
    case MIG_REC_SWITCHOVER:
        chan_finish(c);
        return 1;
    case MIG_REC_BLOCK_EXTENT:
    case MIG_REC_HOOK_DATA: {
        /* No round barrier: a hook keeps its own order per channel. */
        int rc = fault(c->d, "dest-hook-record", 0);
        return rc < 0 ? rc : mig__hooks_dst_record(c->d->hooks, rec);
    }
    default:
        return -MIG_EPROTO;
    }
}

/* A hook's failure, in its own words when it gave them. */
static const char *hook_why(struct dest *d, int rc)
{
    const char *w = mig__hooks_why(d->hooks);
    return *w ? w : mig_strerror(rc);
}

/* HOOK_DATA on a shared stream: a data record unless it is a begin. */
static bool hook_data_record(const struct mig__rec *rec)
{
    uint32_t id, kind;
    const void *data;
    size_t len;
    if (rec->type == MIG_REC_BLOCK_EXTENT)
        return true;
    return rec->type == MIG_REC_HOOK_DATA &&
           mig__rec_get_hook_data(rec, &id, &kind, &data, &len) == 0 &&
           kind >= MIG_HOOK_KIND_CLASS;
}

static void *chan_main(void *arg)
{
    struct chan *c = arg;
    struct mig__rec rec;
    int rc;
    for (;;) {
        rc = mig__stream_get(c->stream, &rec);
        if (rc < 0)
            break;
        rc = chan_handle(c, &rec);
        if (rc == 1)
            return NULL;
        if (rc < 0) {
            chan_fail(c, rc);
            /* Applying failed (a full disk, a backend error): go on reading
             * and dropping this channel's records, so a source blocked
             * writing into it reaches its next control record, which the
             * control loop answers with this cause instead of the source
             * waiting out its link timeout. Ends when the link is shut down
             * (serve_link) or the source stops sending. */
            while (mig__stream_get(c->stream, &rec) >= 0)
                ;
            return NULL;
        }
    }
    chan_fail(c, rc);
    return NULL;
}

static int send_error(struct dest *d, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int send_error(struct dest *d, int rc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    MIG_LOG(d->ctx, ERROR, "%s", msg);
    mig__rec_put_code_text(d->link->ctrl, MIG_REC_ERROR, rc, msg);
    mig__stream_flush(d->link->ctrl);
    return rc;
}

static int answer_resolve(struct dest *d, const struct mig__rec *rec)
{
    char *domain = NULL, hex[33];
    uint8_t sid[16];
    enum mig_outcome o = MIG_OUTCOME_UNKNOWN;
    int rc = mig__rec_get_resolve_query(rec, sid, &domain);
    if (rc < 0)
        return send_error(d, -MIG_EPROTO, "malformed resolve query");
    char name[sizeof(d->info.name)];
    rc = mig__outcome_read(d->p->state_dir, sid, &o, name, sizeof(name));
    mig__hex(sid, 16, hex);
    if (rc < 0) {
        free(domain);
        return send_error(d, rc, "cannot read the outcomes journal: %s", mig_strerror(rc));
    }
    /* A commit recorded as started but not finished (the receiver died in
     * between): the host itself knows whether the domain runs. */
    if (o == MIG_OUTCOME_UNKNOWN && name[0]) {
        enum mig__probe pr;
        rc = d->hv->ops->probe(d->hv, name, &pr);
        if (rc == 0) {
            o = pr == MIG_PROBE_RUNNING ? MIG_OUTCOME_COMMITTED : MIG_OUTCOME_DISCARDED;
            mig__outcome_write(d->p->state_dir, sid, mig_outcome_name(o), name);
        }
    }
    MIG_LOG(d->ctx, INFO, "resolve query for %s (session %s): %s", domain, hex,
            mig_outcome_name(o));
    free(domain);
    mig__rec_put_resolve_answer(d->link->ctrl, sid, (uint32_t)o);
    return mig__stream_flush(d->link->ctrl);
}

/* What the receiver of session 'sid', which died while it received 'name',
 * left on this host: settled as resolve would if it died inside COMMIT
 * ("committing" recorded), else its incoming domain destroyed. */
static int reap_stale(struct mig_ctx *ctx, const char *state_dir, struct mig__hv *hv,
                      const char *name, const uint8_t sid[16])
{
    enum mig_outcome o = MIG_OUTCOME_UNKNOWN;
    char hex[33], rec_name[sizeof(((struct mig__dom_info *)0)->name)];
    bool found = false;
    mig__hex(sid, 16, hex);
    int rc = mig__outcome_read(state_dir, sid, &o, rec_name, sizeof(rec_name));
    if (rc < 0)
        return rc;
    if (o == MIG_OUTCOME_UNKNOWN) {
        enum mig__probe pr;
        rc = hv->ops->probe(hv, name, &pr);
        if (rc < 0)
            return rc;
        o = pr == MIG_PROBE_RUNNING ? MIG_OUTCOME_COMMITTED : MIG_OUTCOME_DISCARDED;
        mig__outcome_write(state_dir, sid, mig_outcome_name(o), name);
        MIG_LOG(ctx, WARN, "the receiver of %s (session %s) died inside COMMIT: %s", name, hex,
                mig_outcome_name(o));
        return 0;
    }
    if (!hv->ops->reap)
        return 0;
    rc = hv->ops->reap(hv, name, &found);
    if (rc < 0)
        return rc;
    if (found)
        MIG_LOG(ctx, WARN, "discarded the incoming %s that a receiver which died left (session %s)",
                name, hex);
    return 0;
}

/* The claim on the incoming name, before anything is built under it. */
static int claim(struct dest *d)
{
    uint8_t old[16];
    bool stale = false;
    int rc = mig__claim_take(d->p->state_dir, d->info.name, d->link->session_id, &d->claim_fd,
                             &stale, old);
    if (rc == -MIG_EBUSY)
        return send_error(d, rc, "another migration of %s into this host is under way",
                          d->info.name);
    if (rc < 0)
        return send_error(d, rc, "cannot record the incoming %s in %s: %s", d->info.name,
                          d->p->state_dir, mig_strerror(rc));
    if (stale) {
        rc = reap_stale(d->ctx, d->p->state_dir, d->hv, d->info.name, old);
        if (rc < 0)
            return send_error(d, rc, "cannot remove what an earlier receiver of %s left: %s",
                              d->info.name, mig_strerror(rc));
    }
    return 0;
}

static int start_channels(struct dest *d)
{
    d->n = d->link->nchannels;
    d->ch = calloc(d->n, sizeof(*d->ch));
    if (!d->ch)
        return -MIG_ENOMEM;
    for (unsigned i = 0; i < d->n; i++) {
        struct chan *c = &d->ch[i];
        c->d = d;
        c->idx = i;
        c->stream = d->link->data[i];
        c->done_round = -1;
        c->dctx = ZSTD_createDCtx();
        c->zbuf = malloc((size_t)MIG_PAGES_PER_BATCH * MIG_PAGE_SIZE);
        if (!c->dctx || !c->zbuf)
            return -MIG_ENOMEM;
    }
    /* ssh and fd pairs carry the data on the control stream: the control
     * loop applies it itself (serve()). */
    if (d->link->data_on_ctrl)
        return 0;
    /* A backend that can hand out the incoming domain's pages gets their
     * data written there by the channel's reads: no copy of it here. */
    bool place = d->hv->ops->place_pages && d->hv->ops->place_pages(d->hv, NULL, 0, NULL) == 0;
    if (place)
        MIG_LOG(d->ctx, INFO, "%s: pages go straight into its memory", d->info.name);
    for (unsigned i = 0; i < d->n; i++) {
        if (place) {
            d->ch[i].placer = (struct mig__placer){.place = chan_place, .opaque = &d->ch[i]};
            mig__stream_set_placer(d->ch[i].stream, &d->ch[i].placer);
        }
        if (pthread_create(&d->ch[i].thread, NULL, chan_main, &d->ch[i]) != 0)
            return -MIG_ENOMEM;
        d->ch[i].started = true;
    }
    return 0;
}

static void stop_channels(struct dest *d)
{
    if (!d->ch)
        return;
    pthread_mutex_lock(&d->lock);
    if (!d->err)
        d->err = -MIG_ECANCELLED;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void join_channels(struct dest *d)
{
    for (unsigned i = 0; d->ch && i < d->n; i++) {
        struct chan *c = &d->ch[i];
        if (c->started)
            pthread_join(c->thread, NULL);
        if (c->stream)
            mig__stream_set_placer(c->stream, NULL); /* it points into d->ch */
        ZSTD_freeDCtx(c->dctx);
        free(c->zbuf);
    }
    free(d->ch);
    d->ch = NULL;
}

/* Wait for every channel to deliver 'final' and its end-of-data mark. */
static int wait_final(struct dest *d, uint32_t final)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        bool all = true;
        for (unsigned i = 0; i < d->n; i++)
            all = all && d->ch[i].finished;
        if (all || d->err)
            break;
        pthread_cond_wait(&d->cond, &d->lock);
    }
    if (d->err)
        rc = d->err;
    else if (completed_round(d) != (int64_t)final)
        rc = -MIG_EPROTO;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* After the final round: a damaged page that never came again was damaged
 * in transit (a page the guest rewrote is dirty and was resent, at the
 * latest in the final round, the guest paused). */
static int check_damage(struct dest *d)
{
    uint64_t left = atomic_load(&d->ndamaged), torn = atomic_load(&d->torn);
    /* campaign self-test: the lost final round must reach the guest, for
     * the campaign's memory check (not this one) to be what catches it */
    if (mig__planted(d->ctx, "final-round"))
        left = 0;
    if (left) {
        _Atomic uint64_t *bm = atomic_load(&d->damaged);
        uint64_t first = 0, words = (d->info.nr_pages + 63) / 64;
        while (first / 64 + 1 < words && !atomic_load(&bm[first / 64]))
            first += 64;
        uint64_t w = atomic_load(&bm[first / 64]);
        first += w ? (uint64_t)__builtin_ctzll(w) : 0;
        return send_error(d, -MIG_ECRC,
                          "%" PRIu64 " pages arrived damaged and never came again (the first: "
                          "page %" PRIu64 "): corrupted in transit", left, first);
    }
    if (torn)
        MIG_LOG(d->ctx, INFO, "%" PRIu64 " pages were read by the source while the guest "
                "wrote them and came again", torn);
    return 0;
}

/* The state held since SWITCHOVER, in arrival order, once the final round
 * is applied everywhere; frees each. */
static int load_late(struct dest *d)
{
    int rc = 0;
    for (unsigned i = 0; i < d->nlate; i++) {
        if (rc == 0)
            rc = d->hv->ops->load_state(d->hv, &d->late[i]);
        free(d->late[i].data);
        d->late[i].data = NULL;
    }
    d->nlate = 0;
    return rc;
}

static int serve(struct dest *d)
{
    struct mig__rec rec;
    char *facts = NULL;
    bool switchover = false;
    int rc;

    rc = fault(d, "dest-handshake", 0);
    if (rc < 0)
        return rc;
    rc = mig__hv_open(d->ctx, d->p->backend, MIG_ROLE_DESTINATION, &d->hv);
    if (rc < 0) {
        /* Still answer: the source must learn why. */
        mig__rec_put_text(d->link->ctrl, MIG_REC_FACTS, "{}");
        return send_error(d, rc, "destination backend %s: %s", d->p->backend, mig_strerror(rc));
    }
    rc = d->hv->ops->facts(d->hv, &facts);
    if (rc < 0)
        return send_error(d, rc, "cannot gather host facts: %s", mig_strerror(rc));
    mig__rec_put_text(d->link->ctrl, MIG_REC_FACTS, facts);
    free(facts);
    rc = mig__stream_flush(d->link->ctrl);
    if (rc < 0)
        return rc;

    rc = mig__stream_get(d->link->ctrl, &rec);
    if (rc < 0)
        return rc;
    if (rec.type == MIG_REC_RESOLVE_QUERY)
        return answer_resolve(d, &rec);
    if (rec.type == MIG_REC_ABORT) {
        /* a pre-flight check (--check), or a source that found us unfit */
        int32_t code = 0;
        char *why = NULL;
        mig__rec_get_code_text(&rec, &code, &why);
        MIG_LOG(d->ctx, INFO, "source ended the session before any page: %s", why ? why : "?");
        free(why);
        return 0;
    }
    if (rec.type != MIG_REC_DOMAIN_INFO)
        return send_error(d, -MIG_EPROTO, "expected DOMAIN_INFO, got %s",
                          mig__rec_type_name(rec.type));
    struct mig__rec_dom_info di;
    rc = mig__rec_get_dom_info(&rec, &di);
    if (rc == 0)
        rc = mig__dom_info_check(&di, &d->info);
    if (rc < 0)
        return send_error(d, rc, "malformed domain description");
    rc = mig_fsm_transition(&d->fsm, MIG_STATE_NONE, MIG_STATE_RECEIVING);
    if (rc == 0)
        rc = fault(d, "dest-setup", 0);
    if (rc < 0)
        return rc;
    rc = claim(d);
    if (rc < 0)
        return rc;
    rc = d->hv->ops->create_incoming(d->hv, &d->info);
    if (rc < 0)
        return send_error(d, rc, "cannot create the incoming domain %s: %s", d->info.name,
                          mig_strerror(rc));
    d->created = true;
    struct mig__hook_env env = {
        .ctx = d->ctx,
        .role = MIG_ROLE_DESTINATION,
        .args = d->p->hook_args,
        .info = &d->info,
        .state_dir = d->p->state_dir,
    };
    rc = mig__hooks_dst_new(&env, &d->hooks);
    if (rc < 0)
        return rc;
    MIG_LOG(d->ctx, INFO, "receiving %s: %" PRIu64 " MiB, %u vCPUs, %u channels", d->info.name,
            d->info.nr_pages * MIG_PAGE_SIZE >> 20, d->info.vcpus, d->link->nchannels);
    rc = start_channels(d);
    if (rc < 0)
        return rc;

    /* Control loop: round markers, switchover, state, then READY / COMMIT. */
    for (;;) {
        rc = mig__stream_get(d->link->ctrl, &rec);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&d->lock);
        int cerr = d->err;
        pthread_mutex_unlock(&d->lock);
        if (cerr)
            return send_error(d, cerr, "receiving pages: %s", mig_strerror(cerr));
        /* On a shared stream the source sends, per round, the channel's
         * ROUND_END (round = done + 1) and then its own (round = done), and
         * at the end the channel's SWITCHOVER after its own. */
        if (d->link->data_on_ctrl) {
            struct chan *c0 = &d->ch[0];
            bool data = rec.type == MIG_REC_PAGES || rec.type == MIG_REC_PAGES_ZSTD ||
                        rec.type == MIG_REC_PAGES_CRC || rec.type == MIG_REC_ZERO_RUNS ||
                        hook_data_record(&rec) || (rec.type == MIG_REC_SWITCHOVER && switchover);
            if (rec.type == MIG_REC_ROUND_END) {
                uint32_t round;
                uint64_t pages;
                rc = mig__rec_get_round_end(&rec, &round, &pages);
                if (rc < 0)
                    return rc;
                data = (int64_t)round == c0->done_round + 1 && !c0->finished;
            }
            if (data) {
                rc = chan_handle(c0, &rec);
                if (rc < 0)
                    return send_error(d, rc, "receiving pages: %s", mig_strerror(rc));
                continue;
            }
        }
        switch (rec.type) {
        case MIG_REC_ROUND_END: {
            uint32_t round;
            uint64_t pages;
            rc = mig__rec_get_round_end(&rec, &round, &pages);
            if (rc < 0)
                return rc;
            d->rounds_seen = true;
            if (!switchover)
                break;
            uint64_t t0 = mig__now_ns();
            rc = wait_final(d, round);
            if (rc < 0)
                return send_error(d, rc, "final round: %s", mig_strerror(rc));
            rc = check_damage(d);
            if (rc < 0)
                return rc;
            rc = load_late(d);
            if (rc < 0)
                return send_error(d, rc, "loading the domain state: %s", mig_strerror(rc));
            rc = mig__hooks_dst_ready(d->hooks);
            if (rc < 0)
                return send_error(d, rc, "not ready: %s", hook_why(d, rc));
            uint64_t t1 = mig__now_ns();
            rc = d->hv->ops->ready(d->hv);
            if (rc < 0)
                return send_error(d, rc, "domain not ready: %s", mig_strerror(rc));
            if (d->hv->ops->vifs) {
                /* the new domain's vif names (xen: vifNEWDOMID.N) for the
                 * network handoff; it still works by MAC without them */
                char vifs[sizeof(d->info.config)];
                if (d->hv->ops->vifs(d->hv, vifs, sizeof(vifs)) >= 0 && vifs[0])
                    mig__hooks_dst_devices(d->hooks, vifs);
            }
            MIG_LOG(d->ctx, INFO, "final round %u applied after %" PRIu64 " ms, ready in %" PRIu64
                    " ms", round, (t1 - t0) / 1000000u, (mig__now_ns() - t1) / 1000000u);
            rc = mig_fsm_transition(&d->fsm, MIG_STATE_RECEIVING, MIG_STATE_READY);
            if (rc < 0)
                return send_error(d, -MIG_EPROTO, "second final round from the source");
            mig__rec_put_empty(d->link->ctrl, MIG_REC_READY);
            rc = mig__stream_flush(d->link->ctrl);
            if (rc == 0)
                rc = fault(d, "dest-ready", 0);
            if (rc < 0)
                return rc;
            break;
        }
        case MIG_REC_HOOK_DATA:
            /* a hook's begin: only before the first round */
            if (d->rounds_seen || switchover)
                return send_error(d, -MIG_EPROTO, "hook begin after the rounds started");
            rc = fault(d, "dest-hook-begin", 0);
            if (rc == 0)
                rc = mig__hooks_dst_begin(d->hooks, &rec, d->link->ctrl);
            if (rc < 0)
                return send_error(d, rc, "%s", hook_why(d, rc));
            rc = mig__stream_flush(d->link->ctrl);
            if (rc < 0)
                return rc;
            break;
        case MIG_REC_SWITCHOVER:
            if (switchover)
                return -MIG_EPROTO;
            switchover = true;
            rc = fault(d, "dest-switchover", 0);
            if (rc < 0)
                return rc;
            break;
        case MIG_REC_STATE_BLOB: {
            struct mig__blob blob = {0};
            const void *data;
            if (!switchover && !d->hv->ops->setup_state)
                return send_error(d, -MIG_EPROTO, "state before switchover");
            rc = mig__rec_get_blob(&rec, &blob.kind, &data, &blob.len);
            if (rc < 0)
                return rc;
            if (switchover) {
                /* after the final round's pages (load_late) */
                if (d->nlate == MIG_DEST_MAX_LATE)
                    return send_error(d, -MIG_EPROTO, "too many state records");
                struct mig__blob *l = &d->late[d->nlate];
                l->data = malloc(blob.len ? blob.len : 1);
                if (!l->data)
                    return send_error(d, -MIG_ENOMEM, "no memory for the domain state");
                memcpy(l->data, data, blob.len);
                l->kind = blob.kind;
                l->len = blob.len;
                d->nlate++;
                break;
            }
            blob.data = (void *)data;
            rc = d->hv->ops->load_state(d->hv, &blob);
            if (rc < 0)
                return send_error(d, rc, "loading the domain state: %s", mig_strerror(rc));
            break;
        }
        case MIG_REC_COMMIT:
            if (d->fsm.state != MIG_STATE_READY)
                return send_error(d, -MIG_EPROTO, "COMMIT before READY");
            rc = fault(d, "dest-commit-recv", 0);
            if (rc < 0)
                return rc;
            /* Durable before the domain starts: resolve relies on it. */
            rc = mig__outcome_write(d->p->state_dir, d->link->session_id, "committing",
                                    d->info.name);
            if (rc < 0)
                return send_error(d, rc, "cannot record the commit in %s: %s; not starting",
                                  d->p->state_dir, mig_strerror(rc));
            rc = fault(d, "dest-commit-op", 0); /* as if starting the domain failed */
            if (rc == 0)
                rc = d->hv->ops->commit(d->hv);
            if (rc < 0) {
                d->hv->ops->discard(d->hv);
                d->created = false;
                mig__outcome_write(d->p->state_dir, d->link->session_id, "discarded",
                                   d->info.name);
                mig_fsm_transition(&d->fsm, MIG_STATE_READY, MIG_STATE_DISCARDED);
                return send_error(d, rc, "cannot start the domain: %s", mig_strerror(rc));
            }
            d->created = false;
            /* The hooks first (net: the announcement that brings the
             * domain's traffic here), then the durable record: a crash in
             * between leaves "committing", which resolve settles by asking
             * the backend (probe). */
            if (mig__hooks_dst_commit(d->hooks) < 0)
                MIG_LOG(d->ctx, ERROR, "%s runs here, but a hook failed after COMMIT: %s",
                        d->info.name, hook_why(d, -MIG_EIO));
            mig__outcome_write(d->p->state_dir, d->link->session_id, "committed", d->info.name);
            mig_fsm_transition(&d->fsm, MIG_STATE_READY, MIG_STATE_COMMITTED);
            MIG_LOG(d->ctx, INFO, "%s committed: running here", d->info.name);
            if (fault(d, "dest-commit-done", 0) < 0)
                return 0; /* committed; only the acknowledgement is lost */
            mig__rec_put_empty(d->link->ctrl, MIG_REC_COMMIT_ACK);
            mig__stream_flush(d->link->ctrl);
            return 0;
        case MIG_REC_ABORT: {
            int32_t code = 0;
            char *why = NULL;
            mig__rec_get_code_text(&rec, &code, &why);
            MIG_LOG(d->ctx, WARN, "source aborted: %s", why ? why : "?");
            free(why);
            return -MIG_EABORTED;
        }
        default:
            return send_error(d, -MIG_EPROTO, "unexpected %s on the control channel",
                              mig__rec_type_name(rec.type));
        }
    }
}

static int serve_link(struct mig_ctx *ctx, const struct mig_recv_params *p, struct mig__link *link)
{
    struct dest d = {.ctx = ctx, .p = p, .link = link, .claim_fd = -1};
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    mig__ratelimit_init(&d.rl, 1000, 5);
    mig_fsm_init(&d.fsm, ctx, MIG_ROLE_DESTINATION);
    int rc = serve(&d);
    if (rc < 0 || d.fsm.state != MIG_STATE_COMMITTED) {
        /* Wake every channel thread (blocked reads, barrier waits). */
        stop_channels(&d);
        mig__link_shutdown(link);
    }
    join_channels(&d);
    free((void *)atomic_load(&d.damaged));
    for (unsigned i = 0; i < d.nlate; i++)
        free(d.late[i].data);
    if (d.fsm.state != MIG_STATE_COMMITTED)
        mig__hooks_dst_abort(d.hooks, rc < 0 ? rc : -MIG_EABORTED);
    mig__hooks_free(d.hooks);
    if (d.created) {
        int drc = d.hv->ops->discard(d.hv);
        if (drc < 0)
            MIG_LOG(ctx, ERROR, "discarding the incoming domain: %s", mig_strerror(drc));
        else
            MIG_LOG(ctx, INFO, "incoming domain %s discarded", d.info.name);
        mig__outcome_write(p->state_dir, link->session_id, "discarded", d.info.name);
        if (mig_fsm_transition(&d.fsm, d.fsm.state, MIG_STATE_DISCARDED) < 0 && rc == 0)
            rc = -MIG_ESTATE;
    }
    /* committed or discarded: nothing of this session is left to reap */
    mig__claim_release(p->state_dir, d.info.name, d.claim_fd);
    if (d.hv)
        d.hv->ops->close(d.hv);
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.lock);
    return rc;
}

int mig_host_facts(struct mig_ctx *ctx, const char *backend, char **json_out)
{
    struct mig__hv *hv = NULL;
    int rc = mig__hv_open(ctx, backend, MIG_ROLE_DESTINATION, &hv);
    if (rc < 0)
        return rc;
    rc = hv->ops->facts(hv, json_out);
    hv->ops->close(hv);
    return rc;
}

static void link_opts(const struct mig_recv_params *p, struct mig__link_opts *lo)
{
    memset(lo, 0, sizeof(*lo));
    lo->channels = p->link.channels; /* 0: the transport's limit (link.c) */
    lo->timeout_ms = p->link.timeout_ms;
    lo->psk_file = p->link.psk_file;
    lo->insecure = p->link.insecure;
    lo->pki_dir = p->link.pki_dir;
    lo->caps = MIG_CAP_ZSTD | MIG_CAP_PAGE_CRC;
}

int mig_receive_fds(struct mig_ctx *ctx, const struct mig_recv_params *p, int rfd, int wfd)
{
    struct mig__link_opts lo;
    struct mig__link *link = NULL;
    link_opts(p, &lo);
    int rc = mig__link_from_fds(ctx, rfd, wfd, &lo, &link);
    if (rc < 0)
        return rc;
    rc = serve_link(ctx, p, link);
    mig__link_close(link);
    return rc;
}

struct sweep {
    struct mig_ctx *ctx;
    const struct mig_recv_params *p;
    struct mig__hv *hv; /* owned, opened at the first stale claim */
};

static int sweep_one(void *opaque, const char *name, const uint8_t sid[16])
{
    struct sweep *sw = opaque;
    if (!sw->hv) {
        int rc = mig__hv_open(sw->ctx, sw->p->backend, MIG_ROLE_DESTINATION, &sw->hv);
        if (rc < 0)
            return rc;
    }
    return reap_stale(sw->ctx, sw->p->state_dir, sw->hv, name, sid);
}

/* Before the first session: what receivers that died left here. */
static void sweep_stale(struct mig_ctx *ctx, const struct mig_recv_params *p)
{
    struct sweep sw = {.ctx = ctx, .p = p};
    int rc = mig__claim_sweep(p->state_dir, sweep_one, &sw);
    if (rc < 0)
        MIG_LOG(ctx, WARN, "cannot clean up after an earlier receiver: %s", mig_strerror(rc));
    if (sw.hv)
        sw.hv->ops->close(sw.hv);
}

int mig_listen_serve(struct mig_ctx *ctx, const struct mig_recv_params *p, const char *uri,
                     volatile int *stop)
{
    struct mig__link_opts lo;
    struct mig__listener *l = NULL;
    link_opts(p, &lo);
    sweep_stale(ctx, p);
    int rc = mig__listener_open(ctx, uri, &lo, &l);
    if (rc < 0)
        return rc;
    MIG_LOG(ctx, INFO, "listening on %s", uri);
    while (!*stop) {
        struct mig__link *link = NULL;
        rc = mig__link_accept(l, 500, &link);
        if (rc == -MIG_ETIMEOUT)
            continue;
        if (rc < 0) {
            MIG_LOG(ctx, WARN, "refused a connection: %s", mig_strerror(rc));
            continue;
        }
        rc = serve_link(ctx, p, link);
        if (rc < 0)
            MIG_LOG(ctx, WARN, "session ended: %s", mig_strerror(rc));
        mig__link_close(link);
    }
    mig__listener_close(l);
    return 0;
}
