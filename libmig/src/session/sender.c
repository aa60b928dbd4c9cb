/*
 * sender.c: the source's data-channel workers. One thread per data channel
 * pulls batches of up to MIG_PAGES_PER_BATCH pages from the current round,
 * maps them through the backend, sends zero pages as runs and the rest as
 * PAGES_CRC records straight from the guest's memory (PAGES from a stable
 * copy to a peer without MIG_CAP_PAGE_CRC; zstd-compressed PAGES_ZSTD) of up
 * to MIG_SEND_DIRECT_PAGES (MIG_SEND_RECORD_PAGES), then closes the round with
 * ROUND_END so the destination can apply rounds in order (round barriers).
 * With PAGES_CRC each worker has a helper thread that finds the zero pages
 * and takes the CRCs of the next batch while the worker sends the current
 * one (2 GiB idle guest, 14 paired moves: about 4% less time), at a lower
 * priority than the worker (HELPER_NICE). A job the helper has not started
 * when the worker needs it, the worker takes back and does itself.
 * A shared token bucket enforces the bandwidth limit across channels.
 *
 * Entry points: mig__sender_new/round/set_rate/free.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#define MIG_LOG_MODULE "sender"
#include "crc32c.h"
#include "session-internal.h"

/* Pages per record (the format allows up to MIG_PAGES_PER_BATCH). PAGES
 * from the bounce buffer: 512 KiB, within a core's L2 cache here, so the
 * copy, its checksum and the socket's copy stay there. PAGES_CRC: 1 MiB,
 * one writev as the plain copy's 1 MiB send() (2 GiB idle guest, nine
 * paired moves: 4% less time than with 512 KiB). */
#define MIG_SEND_RECORD_PAGES 128u
#define MIG_SEND_DIRECT_PAGES 256u
_Static_assert(MIG_SEND_DIRECT_PAGES >= MIG_SEND_RECORD_PAGES, "worker arrays hold a record");

/* How much nicer than the worker the helper runs. At the worker's
 * priority the helper, woken for each batch, preempted the worker on its
 * CPU (400 times in one 2 GiB move) while the other CPU often stood idle:
 * the worker spent 60-140 ms of a 550 ms move runnable but waiting. Ten
 * levels lower it rarely does (2 GiB idle guest, 20 paired moves: 3.6%
 * less time), and under load it still gets a share of the CPU, so the
 * worker, which waits for it, is not starved with it (a SCHED_IDLE helper
 * was: beside two busy loops a move took about 20 times longer). */
#define HELPER_NICE 10

/* zstd level for --compress: a fast negative level keeps up with the link. */
#define ZSTD_LEVEL (-3)

/* One batch, mapped, and what the worker's helper found in it. */
struct batch {
    const uint64_t *pfns;             /* borrowed from the round, or ident */
    unsigned n;
    uint64_t ident[MIG_PAGES_PER_BATCH]; /* the pfns of a round of every page */
    const void *mapped[MIG_PAGES_PER_BATCH];
    struct mig__hv_map *map;          /* owned until unmap_pages */
    uint8_t zero[MIG_PAGES_PER_BATCH];
    uint32_t crcs[MIG_PAGES_PER_BATCH];
};

struct worker {
    struct mig__sender *snd;
    unsigned idx;
    pthread_t thread;
    bool started;
    struct mig__stream *stream;       /* borrowed from the link */
    bool direct;                      /* PAGES_CRC: pages go from guest memory */
    uint8_t *bounce;                  /* owned: stable copy of a record's pages; NULL when direct */
    ZSTD_CCtx *cctx;                  /* owned; NULL without compression */
    void *zbuf;                       /* owned: compressed frame */
    size_t zcap;
    unsigned rec_pages;               /* pages per record */
    uint64_t pfns[MIG_SEND_DIRECT_PAGES];
    uint32_t crcs[MIG_SEND_DIRECT_PAGES];
    const void *ptrs[MIG_SEND_DIRECT_PAGES];
    struct mig__zero_run runs[MIG_SEND_DIRECT_PAGES];
    uint64_t round_pages;             /* pages this worker sent in the current round */
    unsigned seen_gen;
    struct batch *b[2];               /* owned: the batch being sent, the next */
    /* PAGES_CRC: a helper thread finds the zero pages of the next batch and
     * takes the CRCs of the others while this worker sends the current one
     * (on two cores the receiver leaves the other core room for it). */
    bool helper_on;
    bool hinit;                       /* hlock and hcond made */
    pthread_t helper;
    pthread_mutex_t hlock;
    pthread_cond_t hcond;             /* a job posted, done, or quit */
    struct batch *hjob;               /* the helper's job; NULL: idle */
    bool hstarted;                    /* the helper works on hjob (else it may be taken back) */
    bool hquit;
    unsigned round_batches;           /* batches sent in the current round */
    unsigned round_taken_back;        /* of which the worker did the helper's part */
};

struct mig__sender {
    struct mig_session *s;            /* borrowed */
    unsigned n;
    struct worker *w;                 /* owned, n entries */

    pthread_mutex_t lock;
    pthread_cond_t job_cond;          /* a new round (gen changed) or quit */
    pthread_cond_t done_cond;         /* a worker finished its part */
    unsigned gen;                     /* bumped for every round */
    bool quit;
    uint32_t round;
    bool final;
    const uint64_t *pfns;             /* borrowed for the round; NULL: 0..npfns-1 */
    uint64_t npfns;
    uint64_t deadline_ns;             /* no batch starts after it (0: none) */
    atomic_uint_fast64_t next;        /* index of the next batch to take */
    unsigned done;                    /* workers finished with the round */
    int err;                          /* first worker error */

    pthread_mutex_t bw_lock;
    uint64_t bw_rate;                 /* bytes/s, 0 = unlimited */
    int64_t bw_tokens;                /* bytes; negative = debt to sleep off */
    uint64_t bw_last_ns;

    struct mig__send_counters c;
};

static bool page_is_zero(const void *page)
{
    const uint64_t *w = page;
    /* early exit on the first word that is not zero: random pages cost one load */
    for (unsigned i = 0; i < MIG_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return false;
    }
    return true;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Take 'bytes' from the shared bucket, sleeping off any debt. The bucket holds
 * at most 50 ms of credit so an idle pause does not allow a burst. */
static void bw_consume(struct mig__sender *snd, uint64_t bytes)
{
    uint64_t wait_ns = 0;
    pthread_mutex_lock(&snd->bw_lock);
    uint64_t rate = snd->bw_rate;
    if (rate) {
        uint64_t now = mig__now_ns();
        int64_t cap = (int64_t)(rate / 20);
        int64_t refill = (int64_t)((now - snd->bw_last_ns) * rate / 1000000000u);
        snd->bw_last_ns = now;
        snd->bw_tokens += refill;
        if (snd->bw_tokens > cap)
            snd->bw_tokens = cap;
        snd->bw_tokens -= (int64_t)bytes;
        if (snd->bw_tokens < 0)
            wait_ns = (uint64_t)(-snd->bw_tokens) * 1000000000u / rate;
    }
    pthread_mutex_unlock(&snd->bw_lock);
    if (wait_ns)
        sleep_ns(wait_ns);
}

static int send_compressed(struct worker *w, uint32_t round, unsigned n)
{
    ZSTD_outBuffer out = {w->zbuf, w->zcap, 0};
    size_t r = ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
    if (ZSTD_isError(r))
        return -MIG_EIO;
    ZSTD_CCtx_setPledgedSrcSize(w->cctx, (unsigned long long)n * MIG_PAGE_SIZE);
    for (unsigned i = 0; i < n; i++) {
        ZSTD_inBuffer in = {w->ptrs[i], MIG_PAGE_SIZE, 0};
        ZSTD_EndDirective mode = i + 1 == n ? ZSTD_e_end : ZSTD_e_continue;
        do {
            r = ZSTD_compressStream2(w->cctx, &out, &in, mode);
            if (ZSTD_isError(r))
                return -MIG_EIO;
        } while ((mode == ZSTD_e_end && r != 0) || in.pos < in.size);
    }
    mig__rec_put_pages_zstd(w->stream, round, n, w->pfns, w->zbuf, (uint32_t)out.pos);
    atomic_fetch_add(&w->snd->c.compressed_bytes, out.pos);
    atomic_fetch_add(&w->snd->c.uncompressed_bytes, (uint64_t)n * MIG_PAGE_SIZE);
    return (int)out.pos;
}

/* Send up to w->rec_pages mapped pages as zero runs and one page
 * record; adds the bytes it queued to *wire. */
static int send_record(struct worker *w, uint32_t round, const uint64_t *pfns,
                       const void *const *mapped, unsigned n, const uint8_t *zero,
                       const uint32_t *crcs, uint64_t *wire)
{
    const void **ptrs = w->ptrs;
    unsigned nruns = 0, nz = 0;
    int rc;
    for (unsigned i = 0; i < n; i++) {
        if (zero ? zero[i] : page_is_zero(mapped[i])) {
            if (nruns && w->runs[nruns - 1].pfn + w->runs[nruns - 1].count == pfns[i])
                w->runs[nruns - 1].count++;
            else
                w->runs[nruns++] = (struct mig__zero_run){.pfn = pfns[i], .count = 1};
        } else if (w->direct) {
            if (crcs)
                w->crcs[nz] = crcs[i];
            w->pfns[nz] = pfns[i];
            ptrs[nz++] = mapped[i];
        } else {
            /* Copy to a stable buffer: the record's checksum (or the
             * compressor) must see the bytes that go on the wire, and the
             * running guest may be rewriting the page right now. */
            uint8_t *dst = w->bounce + (size_t)nz * MIG_PAGE_SIZE;
            memcpy(dst, mapped[i], MIG_PAGE_SIZE);
            w->pfns[nz] = pfns[i];
            ptrs[nz++] = dst;
        }
    }
    if (nruns) {
        mig__rec_put_zero_runs(w->stream, round, nruns, w->runs);
        *wire += 16 + (uint64_t)nruns * sizeof(struct mig__zero_run);
    }
    if (nz) {
        if (w->cctx) {
            rc = send_compressed(w, round, nz);
            if (rc < 0)
                return rc;
            *wire += (uint64_t)rc + 8 * nz;
        } else if (w->direct) {
            /* The pages go to the socket from guest memory, then their
             * CRCs: the helper's, or taken now (the socket's copy just
             * brought the pages into the cache). A page the guest wrote
             * since this round's clean may differ from what was sent: the
             * receiver finds the mismatch, and the write made the page
             * dirty, so it comes again (at the latest in the final round,
             * guest paused). */
            mig__rec_put_pages_crc_begin(w->stream, round, nz, w->pfns, ptrs);
            for (unsigned i = 0; i < nz && !crcs; i++)
                w->crcs[i] = mig__crc32c(0, ptrs[i], MIG_PAGE_SIZE);
            /* test builds: a page as a read torn by the guest's write looks */
            if (mig__fault(w->snd->s->ctx, "src-torn-page", (long)round) == MIG__FAULT_CORRUPT)
                w->crcs[0] ^= 1;
            mig__rec_put_pages_crc_end(w->stream, nz, w->crcs);
            *wire += (uint64_t)nz * (MIG_PAGE_SIZE + 12) + 4;
        } else {
            mig__rec_put_pages(w->stream, round, nz, w->pfns, ptrs);
            *wire += (uint64_t)nz * (MIG_PAGE_SIZE + 8);
        }
    }
    /* Large records went out as they were put and small ones were copied
     * into the stream's buffer: push those now, except after PAGES_CRC,
     * whose CRCs (1 KiB) leave with the next record's write. */
    rc = w->direct ? mig__stream_error(w->stream) : mig__stream_flush(w->stream);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&w->snd->c.zero_pages, n - nz);
    atomic_fetch_add(&w->snd->c.normal_pages, nz);
    return 0;
}

/* The helper: zero flags and CRCs of one batch at a time. */
static void *helper_main(void *arg)
{
    struct worker *w = arg;
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, (id_t)gettid()) + HELPER_NICE; /* its creator's + */
    if (errno || setpriority(PRIO_PROCESS, (id_t)gettid(), prio > 19 ? 19 : prio))
        MIG_LOG(w->snd->s->ctx, DEBUG, "data channel %u: helper keeps its priority", w->idx);
    pthread_mutex_lock(&w->hlock);
    for (;;) {
        while (!w->hjob && !w->hquit)
            pthread_cond_wait(&w->hcond, &w->hlock);
        if (!w->hjob)
            break;
#ifdef MIG_FAULT_INJECTION
        /* test builds: a helper that gets no CPU for a while (stall) */
        pthread_mutex_unlock(&w->hlock);
        (void)mig__fault(w->snd->s->ctx, "src-helper-late", 0);
        pthread_mutex_lock(&w->hlock);
        if (!w->hjob)
            continue; /* taken back meanwhile */
#endif
        struct batch *b = w->hjob;
        w->hstarted = true;
        pthread_mutex_unlock(&w->hlock);
        for (unsigned i = 0; i < b->n; i++) {
            b->zero[i] = page_is_zero(b->mapped[i]);
            if (!b->zero[i])
                b->crcs[i] = mig__crc32c(0, b->mapped[i], MIG_PAGE_SIZE);
        }
        pthread_mutex_lock(&w->hlock);
        w->hjob = NULL;
        w->hstarted = false;
        pthread_cond_broadcast(&w->hcond);
    }
    pthread_mutex_unlock(&w->hlock);
    return NULL;
}

/* Hand b to the helper (no-op without a helper). */
static void helper_post(struct worker *w, struct batch *b)
{
    if (!w->helper_on || !b)
        return;
    pthread_mutex_lock(&w->hlock);
    w->hjob = b;
    pthread_cond_broadcast(&w->hcond);
    pthread_mutex_unlock(&w->hlock);
}

/* The helper's results for its job: true once it has finished them; false
 * without a helper or when it had not started (the job is taken back and
 * the worker does that part itself, its CRCs after the send). At a lower
 * priority the helper is often runnable but not running when the worker
 * gets there, and waiting for it cost more than doing the work: 2 GiB idle
 * guest, two series of 20 paired moves, 3% and 7% less time. */
static bool helper_finish(struct worker *w)
{
    if (!w->helper_on)
        return false;
    pthread_mutex_lock(&w->hlock);
    bool take_back = w->hjob && !w->hstarted;
    if (take_back)
        w->hjob = NULL;
    while (w->hjob)
        pthread_cond_wait(&w->hcond, &w->hlock);
    pthread_mutex_unlock(&w->hlock);
    return !take_back;
}

/* What a worker was given for the current round. */
struct round_job {
    uint32_t round;
    bool final;
    const uint64_t *pfns;             /* borrowed; NULL: pages 0..npfns-1 */
    uint64_t npfns;
    uint64_t deadline;                /* ns, 0: none */
};

/* Take and map the round's next batch into b: 1, 0 when there is none to
 * take (round done, cancelled, failed elsewhere, past the deadline), or an
 * error. A batch taken is sent whole: the caller finds what was not sent
 * from 'next'. */
static int take_batch(struct worker *w, const struct round_job *j, struct batch *b)
{
    struct mig__sender *snd = w->snd;
    struct mig__hv *hv = snd->s->hv;
    if (atomic_load(&snd->s->cancel) && !j->final)
        return 0;
    pthread_mutex_lock(&snd->lock);
    int failed = snd->err;
    pthread_mutex_unlock(&snd->lock);
    if (failed || (j->deadline && mig__now_ns() >= j->deadline))
        return 0;
    uint64_t start = atomic_fetch_add(&snd->next, MIG_PAGES_PER_BATCH);
    if (start >= j->npfns)
        return 0;
    uint64_t left = j->npfns - start;
    b->n = left < MIG_PAGES_PER_BATCH ? (unsigned)left : MIG_PAGES_PER_BATCH;
    if (j->pfns) {
        b->pfns = j->pfns + start;
    } else {
        for (unsigned i = 0; i < b->n; i++)
            b->ident[i] = start + i;
        b->pfns = b->ident;
    }
    b->map = NULL;
    int rc = hv->ops->map_pages(hv, b->pfns, b->n, b->mapped, &b->map);
    return rc < 0 ? rc : 1;
}

/* Send one batch, with the helper's zero flags and CRCs if 'found'.
 * Page contents are read while the guest may be writing
 * them: a torn copy is harmless because the write also dirtied the page,
 * which a later round (at the latest the final one, guest paused) resends.
 * The backend maps the whole batch at once (Xen maps foreign pages per
 * call); it goes out as records of w->rec_pages (see MIG_SEND_*_PAGES). */
static int send_batch(struct worker *w, uint32_t round, const struct batch *b, bool found)
{
    struct mig__sender *snd = w->snd;
    uint64_t wire = 0;
    int rc = 0;
    for (unsigned off = 0; off < b->n && rc == 0; off += w->rec_pages) {
        unsigned k = b->n - off < w->rec_pages ? b->n - off : w->rec_pages;
        rc = send_record(w, round, b->pfns + off, b->mapped + off, k,
                         found ? b->zero + off : NULL, found ? b->crcs + off : NULL, &wire);
    }
    if (rc == 0) {
        w->round_pages += b->n;
        w->round_batches++;
        w->round_taken_back += w->helper_on && !found;
        atomic_fetch_add(&snd->c.payload_bytes, wire);
        bw_consume(snd, wire);
    }
    return rc;
}

/* One round's part: the helper works on the next batch while this one is
 * sent. */
static int worker_round(struct worker *w, const struct round_job *j)
{
    struct mig__hv *hv = w->snd->s->hv;
    struct batch *cur = w->b[0], *nxt = w->b[1];
    int rc = take_batch(w, j, cur);
    if (rc <= 0)
        return rc;
    helper_post(w, cur);
    for (;;) {
        int more = take_batch(w, j, nxt);
        bool found = helper_finish(w);
        if (more > 0)
            helper_post(w, nxt);
        rc = more < 0 ? more : send_batch(w, j->round, cur, found);
        hv->ops->unmap_pages(hv, cur->map);
        if (more > 0 && rc < 0) { /* taken, not sent: the round fails */
            (void)helper_finish(w); /* the helper lets go of its mapping */
            hv->ops->unmap_pages(hv, nxt->map);
        }
        if (more <= 0 || rc < 0)
            return rc;
        struct batch *t = cur;
        cur = nxt;
        nxt = t;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mig__sender *snd = w->snd;
    for (;;) {
        pthread_mutex_lock(&snd->lock);
        while (snd->gen == w->seen_gen && !snd->quit)
            pthread_cond_wait(&snd->job_cond, &snd->lock);
        if (snd->quit) {
            pthread_mutex_unlock(&snd->lock);
            break;
        }
        w->seen_gen = snd->gen;
        uint32_t round = snd->round;
        bool final = snd->final;
        const uint64_t *pfns = snd->pfns;
        uint64_t npfns = snd->npfns;
        uint64_t deadline = final ? 0 : snd->deadline_ns;
        pthread_mutex_unlock(&snd->lock);

        w->round_pages = 0;
        w->round_batches = w->round_taken_back = 0;
        struct round_job j = {.round = round, .final = final, .pfns = pfns, .npfns = npfns,
                              .deadline = deadline};
        int rc = worker_round(w, &j);
        if (w->helper_on)
            MIG_LOG(snd->s->ctx, DEBUG,
                    "data channel %u: round %" PRIu32 ": %u of %u batches taken back from the "
                    "helper",
                    w->idx, round, w->round_taken_back, w->round_batches);
        if (rc == 0) {
            mig__rec_put_round_end(w->stream, round, w->round_pages);
            if (final)
                mig__rec_put_empty(w->stream, MIG_REC_SWITCHOVER);
            rc = mig__stream_flush(w->stream);
        }
        pthread_mutex_lock(&snd->lock);
        if (rc < 0 && !snd->err) {
            snd->err = rc;
            MIG_LOG(snd->s->ctx, ERROR, "data channel %u: %s", w->idx, mig_strerror(rc));
        }
        snd->done++;
        pthread_cond_broadcast(&snd->done_cond);
        pthread_mutex_unlock(&snd->lock);
    }
    return NULL;
}

int mig__sender_new(struct mig_session *s, struct mig__sender **snd_out)
{
    int rc = 0;
    struct mig__sender *snd = calloc(1, sizeof(*snd));
    if (!snd)
        return -MIG_ENOMEM;
    snd->s = s;
    snd->n = s->link->nchannels;
    pthread_mutex_init(&snd->lock, NULL);
    pthread_mutex_init(&snd->bw_lock, NULL);
    pthread_cond_init(&snd->job_cond, NULL);
    pthread_cond_init(&snd->done_cond, NULL);
    snd->bw_last_ns = mig__now_ns();
    snd->w = calloc(snd->n, sizeof(*snd->w));
    if (!snd->w) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < snd->n; i++) {
        struct worker *w = &snd->w[i];
        w->snd = snd;
        w->idx = i;
        w->stream = s->link->data[i];
        pthread_mutex_init(&w->hlock, NULL);
        pthread_cond_init(&w->hcond, NULL);
        w->hinit = true;
        w->direct = (s->link->caps & MIG_CAP_PAGE_CRC) && !s->p.compress;
        w->rec_pages = w->direct ? MIG_SEND_DIRECT_PAGES : MIG_SEND_RECORD_PAGES;
        if (!w->direct) {
            w->bounce = malloc((size_t)MIG_SEND_RECORD_PAGES * MIG_PAGE_SIZE);
            if (!w->bounce) {
                rc = -MIG_ENOMEM;
                goto out;
            }
        }
        if (s->p.compress) {
            w->cctx = ZSTD_createCCtx();
            w->zcap = ZSTD_compressBound((size_t)MIG_SEND_RECORD_PAGES * MIG_PAGE_SIZE);
            w->zbuf = malloc(w->zcap);
            if (!w->cctx || !w->zbuf) {
                rc = -MIG_ENOMEM;
                goto out;
            }
            ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
        }
        w->b[0] = malloc(sizeof(*w->b[0]));
        w->b[1] = malloc(sizeof(*w->b[1]));
        if (!w->b[0] || !w->b[1]) {
            rc = -MIG_ENOMEM;
            goto out;
        }
        if (w->direct) {
            if (pthread_create(&w->helper, NULL, helper_main, w) != 0) {
                rc = -MIG_ENOMEM;
                goto out;
            }
            w->helper_on = true;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rc = -MIG_ENOMEM;
            goto out;
        }
        w->started = true;
    }
out:
    if (rc < 0) {
        mig__sender_free(snd);
        return rc;
    }
    *snd_out = snd;
    return 0;
}

void mig__sender_set_rate(struct mig__sender *snd, uint64_t bytes_per_s)
{
    pthread_mutex_lock(&snd->bw_lock);
    snd->bw_rate = bytes_per_s;
    snd->bw_tokens = 0;
    snd->bw_last_ns = mig__now_ns();
    pthread_mutex_unlock(&snd->bw_lock);
}

void mig__sender_consume(struct mig__sender *snd, uint64_t bytes)
{
    bw_consume(snd, bytes);
}

const struct mig__send_counters *mig__sender_counters(const struct mig__sender *snd)
{
    return &snd->c;
}

int mig__sender_round(struct mig__sender *snd, uint32_t round, const uint64_t *pfns, uint64_t n,
                      bool final, uint64_t deadline_ns, void (*tick)(struct mig_session *s),
                      uint64_t *sent_out)
{
    pthread_mutex_lock(&snd->lock);
    snd->round = round;
    snd->final = final;
    snd->pfns = pfns;
    snd->npfns = n;
    snd->deadline_ns = deadline_ns;
    atomic_store(&snd->next, 0);
    snd->done = 0;
    snd->gen++;
    pthread_cond_broadcast(&snd->job_cond);
    while (snd->done < snd->n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&snd->done_cond, &snd->lock, &ts);
        if (snd->done < snd->n && tick) {
            pthread_mutex_unlock(&snd->lock);
            tick(snd->s);
            pthread_mutex_lock(&snd->lock);
        }
    }
    int rc = snd->err;
    uint64_t taken = atomic_load(&snd->next);
    pthread_mutex_unlock(&snd->lock);
    *sent_out = taken < n ? taken : n;
    if (rc == 0 && atomic_load(&snd->s->cancel) && !final)
        rc = -MIG_ECANCELLED;
    return rc;
}

void mig__sender_free(struct mig__sender *snd)
{
    if (!snd)
        return;
    pthread_mutex_lock(&snd->lock);
    snd->quit = true;
    pthread_cond_broadcast(&snd->job_cond);
    pthread_mutex_unlock(&snd->lock);
    for (unsigned i = 0; snd->w && i < snd->n; i++) {
        struct worker *w = &snd->w[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->helper_on) {
            pthread_mutex_lock(&w->hlock);
            w->hquit = true;
            pthread_cond_broadcast(&w->hcond);
            pthread_mutex_unlock(&w->hlock);
            pthread_join(w->helper, NULL);
        }
        if (w->hinit) {
            pthread_cond_destroy(&w->hcond);
            pthread_mutex_destroy(&w->hlock);
        }
        free(w->b[0]);
        free(w->b[1]);
        ZSTD_freeCCtx(w->cctx);
        free(w->zbuf);
        free(w->bounce);
    }
    free(snd->w);
    pthread_cond_destroy(&snd->done_cond);
    pthread_cond_destroy(&snd->job_cond);
    pthread_mutex_destroy(&snd->bw_lock);
    pthread_mutex_destroy(&snd->lock);
    free(snd);
}
