/*
 * source.c: the source side of a live migration. Walks the phases: setup
 * (backend, link, peer facts, DOMAIN_INFO), pre-copy rounds over the
 * backend's log-dirty bitmap with the stop policy and auto-converge after
 * each, stop-and-copy (suspend, last dirty pages, state blobs), and the
 * two-phase switchover (READY, COMMIT, COMMIT-ACK). Any failure before
 * COMMIT resumes the source; a lost link after COMMIT leaves the domain in
 * doubt with a journal for mig_resolve().
 *
 * Entry points: mig_params_init, mig_session_new/run/cancel/free and getters.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MIG_LOG_MODULE "source"
#include "session-internal.h"
#include "profile-internal.h"

#define DEFAULT_STATE_DIR "/var/lib/migrate-live"
#define BITS_PER_LONG (8 * sizeof(unsigned long))
/* Below this many bytes a round is too short to measure bandwidth. */
#define MIN_MEASURE_BYTES (4u << 20)
/* Fixed cost of suspend + state + READY/COMMIT before anything is measured. */
#define DEFAULT_FIXED_COST_MS 10u

void mig_params_init(struct mig_params *p)
{
    memset(p, 0, sizeof(*p));
    p->link.channels = 1;
    p->link.timeout_ms = 10000;
    p->policy = MIG_POLICY_DOWNTIME;
    p->downtime_ms = 300;
    p->throttle = true;
    p->on_timeout = MIG_ON_TIMEOUT_ABORT;
    p->state_dir = DEFAULT_STATE_DIR;
}

int mig__session_fail(struct mig_session *s, int rc, const char *fmt, ...)
{
    if (!s->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, sizeof(s->err), fmt, ap);
        va_end(ap);
        MIG_LOG(s->ctx, ERROR, "%s", s->err);
    }
    return rc;
}

int mig_session_new(struct mig_ctx *ctx, const struct mig_params *p, struct mig_session **s_out)
{
    if (!p->domain || !p->destination)
        return -MIG_EINVAL;
    struct mig_session *s = calloc(1, sizeof(*s));
    if (!s)
        return -MIG_ENOMEM;
    s->ctx = ctx;
    s->p = *p;
    if (!s->p.state_dir)
        s->p.state_dir = DEFAULT_STATE_DIR;
    if (!s->p.link.channels)
        s->p.link.channels = 1;
    if (!s->p.link.timeout_ms)
        s->p.link.timeout_ms = 10000;
    if (!s->p.downtime_ms)
        s->p.downtime_ms = 300;
    atomic_init(&s->cancel, 0);
    atomic_init(&s->hook_bytes, 0);
    mig_fsm_init(&s->fsm, ctx, MIG_ROLE_SOURCE);
    *s_out = s;
    return 0;
}

void mig_session_set_progress(struct mig_session *s, mig_progress_fn *fn, void *opaque)
{
    s->progress = fn;
    s->progress_opaque = opaque;
}

void mig_session_cancel(struct mig_session *s)
{
    atomic_store(&s->cancel, 1);
}

const struct mig_stats *mig_session_stats(const struct mig_session *s)
{
    return &s->st;
}

enum mig_state mig_session_state(const struct mig_session *s)
{
    return s->fsm.state;
}

const char *mig_session_error(const struct mig_session *s)
{
    return s->err;
}

const char *mig_session_preflight(const struct mig_session *s)
{
    return s->preflight;
}

const char *mig_session_preflight_json(const struct mig_session *s)
{
    return s->preflight_json;
}

const char *mig_session_peer_facts(const struct mig_session *s)
{
    return s->peer_facts;
}

static uint64_t ms_since(uint64_t t0)
{
    return (mig__now_ns() - t0) / 1000000u;
}

/* Refresh the counters the workers keep and the link's byte counts. */
static void refresh_stats(struct mig_session *s)
{
    struct mig_stats *st = &s->st;
    if (s->sender) {
        const struct mig__send_counters *c = mig__sender_counters(s->sender);
        st->zero_pages = atomic_load(&c->zero_pages);
        st->normal_pages = atomic_load(&c->normal_pages);
        st->compressed_bytes = atomic_load(&c->compressed_bytes);
        st->uncompressed_bytes = atomic_load(&c->uncompressed_bytes);
        st->transferred_bytes = atomic_load(&c->payload_bytes);
    }
    st->transferred_bytes += atomic_load(&s->hook_bytes);
    st->disk_bytes = st->disk_sent_bytes = st->disk_forwarded_bytes = st->disk_final_bytes = 0;
    st->disk_forwarding = 0;
    mig__hooks_src_stats(s->hooks, st);
    if (s->link) {
        uint64_t w = mig__stream_bytes_out(s->link->ctrl);
        for (unsigned i = 0; i < s->link->nchannels && !s->link->data_on_ctrl; i++)
            w += mig__stream_bytes_out(s->link->data[i]);
        st->wire_bytes = w;
    }
    st->total_time_ms = ms_since(s->t_start_ns);
}

static void report(struct mig_session *s, bool force)
{
    uint64_t now = mig__now_ns();
    if (!s->progress)
        return;
    if (!force && now - s->last_progress_ns < 1000000000u)
        return;
    s->last_progress_ns = now;
    refresh_stats(s);
    s->progress(s->progress_opaque, s->fsm.state, &s->st);
}

/* A fault-injection point: 0, or the error the caller returns. */
static int fault(struct mig_session *s, const char *point, long arg)
{
    int f = mig__fault(s->ctx, point, arg);
    if (f == MIG__FAULT_DROP) {
        if (s->link)
            mig__link_shutdown(s->link);
        return -MIG_EPEER;
    }
    return f;
}

static int transition(struct mig_session *s, enum mig_state from, enum mig_state to)
{
    int rc = mig_fsm_transition(&s->fsm, from, to);
    if (rc == 0)
        report(s, true);
    return rc;
}

/* Called by the sender every ~200 ms while a round is in flight: progress,
 * and a keepalive on the control channel so the destination's reader does
 * not take a long round for a dead peer. */
static void tick(struct mig_session *s)
{
    /* On ssh and fd pairs the data runs on the control stream itself, which
     * keeps it alive, and a second writer would interleave records. */
    if (!s->link->data_on_ctrl)
        mig__stream_keepalive(s->link->ctrl);
    report(s, false);
}

/* Read the control channel once, expecting one of 'want' (a record type),
 * and turn a peer's ERROR/ABORT into a failure naming its message. */
static int expect(struct mig_session *s, uint32_t want, struct mig__rec *rec)
{
    int rc = mig__stream_get(s->link->ctrl, rec);
    if (rc < 0)
        return rc;
    if (rec->type == want)
        return 0;
    if (rec->type == MIG_REC_ERROR || rec->type == MIG_REC_ABORT) {
        int32_t code = 0;
        char *text = NULL;
        if (mig__rec_get_code_text(rec, &code, &text) == 0) {
            free(s->peer_error);
            s->peer_error = text;
            mig__session_fail(s, -MIG_EABORTED, "destination: %s", text);
        }
        return -MIG_EABORTED;
    }
    return mig__session_fail(s, -MIG_EPROTO, "expected %s from the destination, got %s",
                             mig__rec_type_name(want), mig__rec_type_name(rec->type));
}

/* After a data-channel failure, the destination may have said why on the
 * control channel before closing: pick that up for the error message. */
static void collect_peer_error(struct mig_session *s)
{
    struct mig__rec rec;
    if (!s->link || s->peer_error)
        return;
    while (mig__stream_get(s->link->ctrl, &rec) == 0) {
        if (rec.type == MIG_REC_ERROR || rec.type == MIG_REC_ABORT) {
            int32_t code;
            char *text = NULL;
            if (mig__rec_get_code_text(&rec, &code, &text) == 0) {
                s->peer_error = text;
                s->err[0] = 0;
                mig__session_fail(s, -MIG_EABORTED, "destination: %s", text);
            }
            return;
        }
    }
}

/* Before a page moves: are the hosts, the guest and the profile compatible?
 * Every finding goes into s->preflight; incompatibility fails the session. */
static int preflight(struct mig_session *s)
{
    char *src = NULL;
    int rc = s->hv->ops->facts(s->hv, &src);
    if (rc < 0)
        return mig__session_fail(s, rc, "cannot gather this host's facts: %s", mig_strerror(rc));
    rc = mig__preflight_run(s->ctx, s->p.profile, src, s->peer_facts, NULL, &s->preflight,
                            &s->preflight_json);
    free(src);
    if (rc == -MIG_EINCOMPAT)
        return mig__session_fail(s, rc, "incompatible with %s: %s", s->p.destination,
                                 s->preflight ? s->preflight : "");
    if (rc < 0)
        return mig__session_fail(s, rc, "pre-flight check: %s",
                                 s->preflight ? s->preflight : mig_strerror(rc));
    MIG_LOG(s->ctx, INFO, "pre-flight: compatible%s%s", s->p.profile ? " with profile " : "",
            s->p.profile ? s->p.profile : "");
    return 0;
}

/* A hook's failure, in its own words when it gave them. */
static const char *hook_why(struct mig_session *s, int rc)
{
    const char *w = mig__hooks_why(s->hooks);
    return *w ? w : mig_strerror(rc);
}

/* mig__hook_io.send: a hook's record on a data channel, within the
 * session's bandwidth limit. */
static int hook_send(struct mig__hook_io *io, unsigned chan, uint32_t type,
                     const struct iovec *iov, unsigned iovcnt)
{
    struct mig_session *s = io->opaque;
    uint64_t len = 0;
    if (type != MIG_REC_HOOK_DATA && type != MIG_REC_BLOCK_EXTENT)
        return -MIG_EINVAL;
    for (unsigned i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    struct mig__stream *st = s->link->data[chan % s->link->nchannels];
    mig__stream_put(st, type, iov, iovcnt);
    int rc = mig__stream_flush(st);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&s->hook_bytes, len + 16);
    mig__sender_consume(s->sender, len + 16);
    return 0;
}

/* mig__hook_io.tick: a hook's long round keeps the session alive. */
static int hook_tick(struct mig__hook_io *io)
{
    struct mig_session *s = io->opaque;
    tick(s);
    return atomic_load(&s->cancel) ? -MIG_ECANCELLED : 0;
}

/* Attach the hooks (block mirror, network handoff), send their begin blobs
 * and wait until the destination accepted each: a hook's own pre-flight
 * (free space on the target, ...) fails here, before any page moves. */
static int hooks_begin(struct mig_session *s)
{
    struct mig__rec rec;
    struct mig__hook_env env = {
        .ctx = s->ctx,
        .role = MIG_ROLE_SOURCE,
        .args = s->p.hook_args,
        .info = &s->info,
        .state_dir = s->p.state_dir,
    };
    int rc = mig__hooks_src_new(&env, &s->hooks);
    if (rc < 0)
        return mig__session_fail(s, rc, "cannot set up the migration's hooks: %s",
                                 mig_strerror(rc));
    unsigned n = mig__hooks_count(s->hooks);
    if (!n)
        return 0;
    s->hook_io = (struct mig__hook_io){
        .send = hook_send, .tick = hook_tick, .nchannels = s->link->nchannels, .opaque = s};
    rc = mig__hooks_src_begin(s->hooks, &s->hook_io, s->link->ctrl);
    if (rc < 0)
        return mig__session_fail(s, rc, "hook setup: %s", hook_why(s, rc));
    rc = mig__stream_flush(s->link->ctrl);
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        rc = expect(s, MIG_REC_HOOK_DATA, &rec);
        if (rc == 0)
            rc = mig__hooks_src_ack(s->hooks, &rec);
    }
    if (rc < 0)
        return mig__session_fail(s, rc, "the destination refused the migration's hooks: %s",
                                 mig_strerror(rc));
    return fault(s, "src-hooks", 0);
}

static int setup(struct mig_session *s)
{
    struct mig__rec rec;
    int rc = mig__hv_open(s->ctx, s->p.domain, MIG_ROLE_SOURCE, &s->hv);
    if (rc < 0)
        return mig__session_fail(s, rc, "cannot open domain %s: %s", s->p.domain,
                                 mig_strerror(rc));
    rc = s->hv->ops->info(s->hv, &s->info);
    if (rc < 0)
        return mig__session_fail(s, rc, "cannot describe domain %s: %s", s->p.domain,
                                 mig_strerror(rc));
    if (s->info.page_size != MIG_PAGE_SIZE || s->info.nr_pages == 0 ||
        s->info.nr_pages > MIG_MAX_GUEST_PAGES)
        return mig__session_fail(s, -MIG_ENOTSUP, "domain %s: unsupported memory layout",
                                 s->p.domain);
    s->st.total_bytes = s->info.nr_pages * MIG_PAGE_SIZE;
    s->st.dirty_tracking = s->hv->ops->tracking(s->hv);
    /* Before connecting: it may take a while (xen: probing the whole pfn
     * space), and a destination waiting for DOMAIN_INFO gives up after the
     * link timeout. */
    if (s->hv->ops->setup_state && !s->p.check_only) {
        rc = s->hv->ops->save_state(s->hv, &s->setup_blob);
        if (rc < 0)
            return mig__session_fail(s, rc, "saving the domain's setup state: %s",
                                     mig_strerror(rc));
    }

    struct mig__link_opts lo = {
        .channels = s->p.link.channels,
        .timeout_ms = s->p.link.timeout_ms,
        .psk_file = s->p.link.psk_file,
        .insecure = s->p.link.insecure,
        .pki_dir = s->p.link.pki_dir,
        .ssh_command = s->p.link.ssh_command,
        .remote_args = s->p.link.remote_args,
        .caps = MIG_CAP_ZSTD | MIG_CAP_PAGE_CRC,
    };
    /* test builds: offer what a version without PAGES_CRC offers (the
     * pages then go as PAGES, from a stable copy) */
    if (mig__fault(s->ctx, "src-legacy-pages", 0))
        lo.caps &= ~MIG_CAP_PAGE_CRC;
    rc = mig__link_connect(s->ctx, s->p.destination, &lo, &s->link);
    if (rc < 0)
        return mig__session_fail(s, rc, "cannot connect to %s: %s", s->p.destination,
                                 mig_strerror(rc));
    s->st.channels = s->link->nchannels;
    rc = fault(s, "src-handshake", 0);
    if (rc < 0)
        return rc;
    if (s->p.compress && !(s->link->caps & MIG_CAP_ZSTD))
        return mig__session_fail(s, -MIG_ENOTSUP,
                                 "the destination (version %s) does not accept zstd compression",
                                 s->link->peer_version);

    /* The destination speaks first with its host facts (for the pre-flight). */
    rc = expect(s, MIG_REC_FACTS, &rec);
    if (rc < 0)
        return mig__session_fail(s, rc, "no facts from the destination: %s", mig_strerror(rc));
    rc = mig__rec_get_text(&rec, &s->peer_facts);
    if (rc < 0)
        return mig__session_fail(s, rc, "bad facts record from the destination");
    rc = preflight(s);
    if (rc < 0 || s->p.check_only)
        return rc;

    struct mig__rec_dom_info di = {.nr_pages = s->info.nr_pages,
                                   .page_size = s->info.page_size,
                                   .vcpus = s->info.vcpus};
    memcpy(di.name, s->info.name, sizeof(di.name));
    memcpy(di.config, s->info.config, sizeof(di.config));
    mig__rec_put_dom_info(s->link->ctrl, &di);
    if (s->hv->ops->setup_state) {
        mig__rec_put_blob(s->link->ctrl, s->setup_blob.kind, s->setup_blob.data,
                          s->setup_blob.len);
        free(s->setup_blob.data);
        s->setup_blob.data = NULL;
    }
    rc = mig__stream_flush(s->link->ctrl);
    if (rc < 0)
        return mig__session_fail(s, rc, "sending the domain description: %s", mig_strerror(rc));

    size_t longs = (s->info.nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
    s->bitmap = calloc(longs, sizeof(unsigned long));
    s->pfns = malloc(s->info.nr_pages * sizeof(uint64_t));
    if (!s->bitmap || !s->pfns)
        return -MIG_ENOMEM;
    rc = mig__sender_new(s, &s->sender);
    if (rc < 0)
        return rc;
    mig__sender_set_rate(s->sender, s->p.bandwidth);
    rc = hooks_begin(s);
    if (rc < 0)
        return rc;
    s->st.setup_time_ms = ms_since(s->t_start_ns);
    return 0;
}

/* Get-and-clear the dirty bitmap into s->pfns (*n_out pages): the backend's
 * log-dirty bits since the last clean, plus, with 'keep', the bits s->bitmap
 * still holds (pages not sent yet: a cut round's rest, or the set written
 * during the stop set's live round; the final round must send them too).
 * *fresh_out (may be NULL): the pages the backend reported. */
static int collect_dirty(struct mig_session *s, bool keep, uint64_t *n_out, uint64_t *fresh_out)
{
    size_t longs = (s->info.nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
    uint64_t ndirty = 0, n = 0;
    if (!keep)
        memset(s->bitmap, 0, longs * sizeof(unsigned long));
    int rc = s->hv->ops->logdirty_clean(s->hv, s->bitmap, &ndirty);
    if (rc < 0)
        return mig__session_fail(s, rc, "reading the dirty bitmap: %s", mig_strerror(rc));
    for (size_t i = 0; i < longs; i++) {
        unsigned long word = s->bitmap[i];
        while (word) {
            unsigned bit = (unsigned)__builtin_ctzl(word);
            uint64_t pfn = (uint64_t)i * BITS_PER_LONG + bit;
            if (pfn < s->info.nr_pages)
                s->pfns[n++] = pfn;
            word &= word - 1;
        }
    }
    *n_out = n;
    if (fresh_out)
        *fresh_out = ndirty;
    return 0;
}

/* Send pfns[0..n) as a round (pfns NULL: every page, 0..n-1, round 0's
 * list without writing it out). A pre-copy round ends early at the total
 * time limit (--timeout): then *sent_out < n and the rest was not sent. */
static int send_round(struct mig_session *s, uint32_t round, const uint64_t *pfns, uint64_t n,
                      bool final, uint64_t *bytes_out, uint64_t *ns_out, uint64_t *sent_out)
{
    uint64_t deadline = s->p.timeout_s ? s->t_start_ns + s->p.timeout_s * 1000000000ull : 0;
    uint64_t sent = n;
    uint64_t b0 = 0, t0 = mig__now_ns();
    refresh_stats(s);
    b0 = s->st.wire_bytes;
    s->st.rounds = round + 1;
    s->st.pages_last_round = n;
    int rc = mig__hooks_src_round(s->hooks, round, final);
    if (rc < 0)
        return rc == -MIG_ECANCELLED ? rc
                                     : mig__session_fail(s, rc, "round %u: hook: %s", round,
                                                         hook_why(s, rc));
    rc = mig__sender_round(s->sender, round, pfns, n, final, deadline, tick, &sent);
    if (rc < 0)
        return rc == -MIG_ECANCELLED ? rc
                                     : mig__session_fail(s, rc, "round %u: %s", round,
                                                         mig_strerror(rc));
    if (sent < n)
        MIG_LOG(s->ctx, INFO, "round %u cut at the %u s time limit: %" PRIu64 " of %" PRIu64
                " pages sent", round, s->p.timeout_s, sent, n);
    if (sent_out)
        *sent_out = sent;
    /* Pre-copy rounds are announced on the control channel too; the final
     * round's announcement comes after the state (stop_and_copy()). */
    if (!final) {
        mig__rec_put_round_end(s->link->ctrl, round, sent);
        rc = mig__stream_flush(s->link->ctrl);
        if (rc < 0)
            return mig__session_fail(s, rc, "round %u: control channel: %s", round,
                                     mig_strerror(rc));
    }
    refresh_stats(s);
    *bytes_out = s->st.wire_bytes - b0;
    *ns_out = mig__now_ns() - t0;
    return 0;
}

static int precopy(struct mig_session *s)
{
    struct mig__policy_params pp = {
        .policy = s->p.policy,
        .downtime_ms = s->p.downtime_ms,
        .timeout_ms = s->p.timeout_s * 1000u,
        .on_timeout = s->p.on_timeout,
        .max_rounds = s->p.max_rounds,
    };
    struct mig__throttle_state ts = {0};
    uint64_t bandwidth = 0, n = s->info.nr_pages, all_bytes = 0, all_ns = 0;
    bool stopping = false; /* the policy said stop: this round sends the stop set live */
    uint64_t last_clean = 0;
    int rc = s->hv->ops->logdirty_enable(s->hv);
    if (rc < 0)
        return mig__session_fail(s, rc, "enabling dirty tracking: %s", mig_strerror(rc));
    s->logdirty_on = true;
    last_clean = mig__now_ns();

    for (uint32_t round = 0;; round++) {
        uint64_t bytes, ns, sent;
        /* round 0 sends every page: no list (its first touch of 8 bytes a
         * page cost 5 ms per 2 GiB guest) */
        const uint64_t *list = round ? s->pfns : NULL;
        rc = send_round(s, round, list, n, false, &bytes, &ns, &sent);
        if (rc == 0)
            rc = fault(s, "src-round", round);
        if (rc < 0)
            return rc;
        /* Cut by the time limit: what it did not send is still owed, so it
         * joins the next dirty set (a forced switchover sends it). */
        bool cut = sent < n;
        if (cut) {
            memset(s->bitmap, 0, (s->info.nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG *
                                     sizeof(unsigned long));
            for (uint64_t i = sent; i < n; i++) {
                uint64_t pfn = list ? list[i] : i;
                s->bitmap[pfn / BITS_PER_LONG] |= 1ul << (pfn % BITS_PER_LONG);
            }
        }
        /* A short round measures latency, not bandwidth: fall back on the
         * average over all rounds so far. */
        all_bytes += bytes;
        all_ns += ns;
        if (bytes >= MIN_MEASURE_BYTES && ns > 0)
            bandwidth = bytes * 1000000000u / ns;
        else if (all_bytes >= MIN_MEASURE_BYTES / 4 && all_ns > 0)
            bandwidth = all_bytes * 1000000000u / all_ns;
        if (atomic_load(&s->cancel))
            return -MIG_ECANCELLED;

        uint64_t fresh;
        rc = collect_dirty(s, cut, &n, &fresh);
        if (rc < 0)
            return rc;
        uint64_t now = mig__now_ns();
        uint64_t interval = now - last_clean;
        last_clean = now;

        uint64_t hook_pending = mig__hooks_src_pending_bytes(s->hooks);
        struct mig__round_stats rs = {
            .round = round + 1,
            .dirty_pages = n,
            .extra_bytes = hook_pending,
            .page_size = MIG_PAGE_SIZE,
            .bandwidth = bandwidth,
            .dirty_rate = interval ? fresh * MIG_PAGE_SIZE * 1000000000u / interval : 0,
            .fixed_cost_ms = DEFAULT_FIXED_COST_MS + s->hv->ops->state_cost_ms(s->hv),
            .elapsed_ms = ms_since(s->t_start_ns),
            .throttle = ts.percent,
        };
        s->st.remaining_bytes = n * MIG_PAGE_SIZE + hook_pending;
        s->st.bandwidth_bytes_per_s = bandwidth;
        s->st.dirty_bytes_per_s = rs.dirty_rate;
        uint64_t predicted = mig__predict_downtime_ms(&rs);
        s->st.expected_downtime_ms = predicted == UINT64_MAX ? 0 : predicted;

        enum mig__decision d = mig__policy_decide(&rs, &pp);
        MIG_LOG(s->ctx, INFO,
                "round %u: %" PRIu64 " pages dirty, %" PRIu64 " MB/s sent, %" PRIu64
                " MB/s dirtied, throttle %u%%, expected downtime %" PRIu64 " ms: %s",
                round, n, bandwidth / 1000000u, rs.dirty_rate / 1000000u, ts.percent,
                s->st.expected_downtime_ms, mig__decision_name(d));
        report(s, false);
        bool forced = pp.timeout_ms && rs.elapsed_ms >= pp.timeout_ms;
        if (stopping) {
            /* The round just sent was the stop set, live; what the guest
             * wrote meanwhile (n pages, in the bitmap) is the final round.
             * Suspend only if that still fits: a round slowed down (a busy
             * host, a burst of writes) goes on pre-copying instead of
             * overrunning the downtime target. */
            if (d == MIG_DECIDE_STOP_AND_COPY || forced)
                return 0; /* stop_and_copy adds what is written until the suspend */
            stopping = false;
            MIG_LOG(s->ctx, INFO, "round %u: the final set would not fit; going on", round);
        } else if (d == MIG_DECIDE_STOP_AND_COPY) {
            /* As Xen's saver does: what this round left dirty goes now,
             * with the guest running, and the switchover copies only what
             * is written meanwhile. Suspending right after the clean
             * instead would make the guest's own writes while it suspends
             * each take a log-dirty fault (Xen: a nested page fault per
             * page, hundreds of ms on an emulated host) on top of copying
             * these pages inside the downtime. Not when a time limit
             * forces the switchover: that one happens now. */
            if (n == 0 || forced)
                return 0;
            stopping = true;
            continue;
        }
        if (d == MIG_DECIDE_ABORT)
            return mig__session_fail(s, -MIG_ECONVERGE,
                                     "did not converge within %u s (%" PRIu64
                                     " MB dirty, %" PRIu64 " MB/s dirtied vs %" PRIu64
                                     " MB/s sent); the domain keeps running on the source",
                                     s->p.timeout_s, n * MIG_PAGE_SIZE / 1000000u,
                                     rs.dirty_rate / 1000000u, bandwidth / 1000000u);
        if (s->p.throttle) {
            uint32_t before = ts.percent;
            uint32_t pct = mig__throttle_next(&ts, &rs);
            if (pct != before) {
                rc = s->hv->ops->throttle(s->hv, pct);
                if (rc < 0)
                    return mig__session_fail(s, rc, "throttling the guest: %s",
                                             mig_strerror(rc));
                s->throttled = true;
                s->st.throttle_percent = pct;
                MIG_LOG(s->ctx, INFO, "guest dirties too fast: throttled to %u%%", pct);
            }
        }
    }
}

static int stop_and_copy(struct mig_session *s)
{
    uint64_t n = 0, bytes, ns;
    struct mig__blob blob = {0};
    /* From the suspend on, a crash of this process would leave the domain
     * paused here (and, after COMMIT, maybe running there): the journal
     * exists before either can happen, so 'resolve' can always settle it. */
    int rc = mig__journal_write(s->p.state_dir, s->p.domain, s->link->session_id,
                                s->p.destination);
    if (rc < 0)
        return mig__session_fail(s, rc, "cannot write the journal in %s: %s", s->p.state_dir,
                                 mig_strerror(rc));
    s->t_suspend_ns = mig__now_ns();
    rc = s->hv->ops->suspend(s->hv);
    if (rc < 0)
        return mig__session_fail(s, rc, "suspending the domain: %s", mig_strerror(rc));
    s->suspended = true;
    MIG_LOG(s->ctx, INFO, "switchover: suspended in %" PRIu64 " ms", ms_since(s->t_suspend_ns));
    rc = fault(s, "src-stopcopy", 0);
    if (rc < 0)
        return rc;
    rc = mig__hooks_src_stopcopy(s->hooks);
    if (rc < 0)
        return mig__session_fail(s, rc, "switchover: hook: %s", hook_why(s, rc));
    /* What the last pre-copy round left dirty, plus what was written since. */
    rc = collect_dirty(s, true, &n, NULL);
    if (rc < 0)
        return rc;
    if (mig__planted(s->ctx, "final-round")) /* campaign self-test: pages lost */
        n = 0;
    mig__rec_put_empty(s->link->ctrl, MIG_REC_SWITCHOVER);
    rc = mig__stream_flush(s->link->ctrl);
    if (rc < 0)
        return mig__session_fail(s, rc, "switchover: %s", mig_strerror(rc));
    s->st.remaining_bytes = n * MIG_PAGE_SIZE;
    rc = send_round(s, s->st.rounds, s->pfns, n, true, &bytes, &ns, NULL);
    if (rc < 0)
        return rc;
    MIG_LOG(s->ctx, INFO, "switchover: last %" PRIu64 " pages sent at %" PRIu64 " ms", n,
            ms_since(s->t_suspend_ns));
    s->st.remaining_bytes = 0;
    rc = s->hv->ops->save_state(s->hv, &blob);
    if (rc < 0)
        return mig__session_fail(s, rc, "saving the domain state: %s", mig_strerror(rc));
    mig__rec_put_blob(s->link->ctrl, blob.kind, blob.data, blob.len);
    free(blob.data);
    /* The final ROUND_END on the control channel closes the stop-and-copy. */
    mig__rec_put_round_end(s->link->ctrl, s->st.rounds - 1, n);
    rc = mig__stream_flush(s->link->ctrl);
    if (rc < 0)
        return mig__session_fail(s, rc, "sending the domain state: %s", mig_strerror(rc));
    return 0;
}

/* Resume the source after a failure before COMMIT: log-dirty off, throttle
 * lifted, guest running, destination told. */
static void rollback(struct mig_session *s, int why)
{
    if (s->link) {
        mig__rec_put_code_text(s->link->ctrl, MIG_REC_ABORT, why, s->err[0] ? s->err : mig_strerror(why));
        mig__stream_flush(s->link->ctrl);
        mig__link_shutdown(s->link);
    }
    mig__journal_remove(s->p.state_dir, s->p.domain);
    mig__hooks_src_abort(s->hooks, why);
    if (!s->hv)
        return;
    if (s->away) {
        int rc = s->hv->ops->rename(s->hv, s->info.name);
        if (rc < 0)
            MIG_LOG(s->ctx, ERROR, "renaming the domain back to %s: %s", s->info.name,
                    mig_strerror(rc));
        else
            s->away = false;
    }
    if (s->suspended) {
        int rc = s->hv->ops->resume(s->hv);
        if (rc < 0)
            MIG_LOG(s->ctx, ERROR, "resuming the domain after failure: %s", mig_strerror(rc));
        else
            s->suspended = false;
    }
    if (s->throttled) {
        s->hv->ops->throttle(s->hv, 0);
        s->throttled = false;
        s->st.throttle_percent = 0;
    }
    if (s->logdirty_on) {
        s->hv->ops->logdirty_disable(s->hv);
        s->logdirty_on = false;
    }
}

static int wait_ready(struct mig_session *s)
{
    struct mig__rec rec;
    int rc = expect(s, MIG_REC_READY, &rec);
    if (rc < 0)
        return mig__session_fail(s, rc, "destination not ready: %s", mig_strerror(rc));
    MIG_LOG(s->ctx, INFO, "switchover: READY at %" PRIu64 " ms", ms_since(s->t_suspend_ns));
    rc = fault(s, "src-ready", 0);
    if (rc < 0)
        return rc;
    /* A destination that went away after READY never saw COMMIT: resuming
     * here is safe, while sending COMMIT into a dead link would leave the
     * domain in doubt for nothing. */
    if (mig__stream_peer_closed(s->link->ctrl))
        return mig__session_fail(s, -MIG_EPEER,
                                 "the destination closed the link after READY; COMMIT not sent");
    rc = mig__hooks_src_ready(s->hooks);
    if (rc < 0)
        return mig__session_fail(s, rc, "after READY: hook: %s; COMMIT not sent",
                                 hook_why(s, rc));
    return 0;
}

/* Two-phase commit, second half. Failures here never resume the source. */
static int commit(struct mig_session *s)
{
    struct mig__rec rec;
    char away[sizeof(s->info.name) + sizeof(MIG_AWAY_SUFFIX)];
    /* As xl: the source gives up its name before COMMIT, so the destination
     * can take it even on the same host (one name space); a failure before
     * COMMIT renames it back (rollback). */
    snprintf(away, sizeof(away), "%s" MIG_AWAY_SUFFIX, s->info.name);
    int rc = s->hv->ops->rename(s->hv, away);
    if (rc < 0) {
        mig__session_fail(s, rc, "renaming the domain %s before COMMIT: %s", away,
                          mig_strerror(rc));
        rollback(s, rc);
        transition(s, MIG_STATE_STOPCOPY, MIG_STATE_FAILED);
        return rc;
    }
    s->away = true;
    rc = transition(s, MIG_STATE_STOPCOPY, MIG_STATE_COMMIT_SENT);
    if (rc < 0)
        return rc;
    mig__rec_put_empty(s->link->ctrl, MIG_REC_COMMIT);
    rc = mig__stream_flush(s->link->ctrl);
    if (rc == 0)
        rc = fault(s, "src-commit-sent", 0);
    if (rc == 0)
        rc = expect(s, MIG_REC_COMMIT_ACK, &rec);
    if (rc == -MIG_EABORTED) {
        /* The destination refused COMMIT explicitly and discarded its copy:
         * the source runs again. */
        rollback(s, rc);
        transition(s, MIG_STATE_COMMIT_SENT, MIG_STATE_FAILED);
        return rc;
    }
    if (rc < 0) {
        transition(s, MIG_STATE_COMMIT_SENT, MIG_STATE_INDOUBT);
        return mig__session_fail(s, -MIG_EINDOUBT,
                                 "link lost after COMMIT (%s): the domain is paused on the "
                                 "source and may run on %s; run 'xl-migrate-live resolve %s'",
                                 mig_strerror(rc), s->p.destination, s->p.domain);
    }
    s->st.downtime_ms = ms_since(s->t_suspend_ns);
    MIG_LOG(s->ctx, INFO, "switchover: COMMIT-ACK at %" PRIu64 " ms", s->st.downtime_ms);
    s->suspended = false;
    if (mig__hooks_src_commit(s->hooks) < 0)
        MIG_LOG(s->ctx, ERROR, "a hook failed after COMMIT; the domain runs on %s",
                s->p.destination);
    if (mig__planted(s->ctx, "commit")) /* campaign self-test: both copies run */
        rc = s->hv->ops->resume(s->hv);
    else
        rc = s->hv->ops->destroy(s->hv);
    if (rc < 0)
        MIG_LOG(s->ctx, ERROR, "destroying the source copy after COMMIT: %s", mig_strerror(rc));
    if (!mig__planted(s->ctx, "tempfile")) /* campaign self-test: a file left behind */
        mig__journal_remove(s->p.state_dir, s->p.domain);
    if (mig__hooks_src_settle(s->hooks) < 0)
        MIG_LOG(s->ctx, ERROR, "a hook failed to settle after COMMIT; the domain runs on %s",
                s->p.destination);
    return transition(s, MIG_STATE_COMMIT_SENT, MIG_STATE_DONE);
}

int mig_session_run(struct mig_session *s)
{
    int rc;
    s->t_start_ns = mig__now_ns();
    rc = transition(s, MIG_STATE_NONE, MIG_STATE_SETUP);
    if (rc < 0)
        return rc;
    rc = setup(s);
    if (rc < 0)
        goto fail;
    if (s->p.check_only) {
        /* compatible: tell the destination nothing follows, move nothing */
        mig__rec_put_code_text(s->link->ctrl, MIG_REC_ABORT, 0, "pre-flight check only");
        mig__stream_flush(s->link->ctrl);
        refresh_stats(s);
        return 0;
    }
    rc = transition(s, MIG_STATE_SETUP, MIG_STATE_PRECOPY);
    if (rc < 0)
        goto fail;
    rc = precopy(s);
    if (rc < 0)
        goto fail;
    if (atomic_load(&s->cancel)) {
        rc = -MIG_ECANCELLED;
        goto fail;
    }
    rc = transition(s, MIG_STATE_PRECOPY, MIG_STATE_STOPCOPY);
    if (rc < 0)
        goto fail;
    rc = stop_and_copy(s);
    if (rc < 0)
        goto fail;
    rc = wait_ready(s);
    if (rc < 0)
        goto fail;
    if (atomic_load(&s->cancel)) {
        rc = -MIG_ECANCELLED;
        goto fail;
    }
    rc = commit(s);
    refresh_stats(s);
    return rc;

fail:
    if (rc == -MIG_EPEER)
        collect_peer_error(s);
    if (!s->err[0])
        mig__session_fail(s, rc, "%s", mig_strerror(rc));
    rollback(s, rc);
    refresh_stats(s);
    if (!mig_state_is_final(s->fsm.state))
        transition(s, s->fsm.state, rc == -MIG_ECANCELLED ? MIG_STATE_CANCELLED : MIG_STATE_FAILED);
    return rc;
}

void mig_session_free(struct mig_session *s)
{
    if (!s)
        return;
    if (s->link)
        mig__link_shutdown(s->link);
    mig__sender_free(s->sender);
    mig__hooks_free(s->hooks);
    mig__link_close(s->link);
    if (s->hv)
        s->hv->ops->close(s->hv);
    free(s->bitmap);
    free(s->pfns);
    free(s->peer_facts);
    free(s->setup_blob.data);
    free(s->peer_error);
    free(s->preflight);
    free(s->preflight_json);
    free(s);
}
