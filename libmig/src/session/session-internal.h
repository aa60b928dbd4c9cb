/*
 * session-internal.h: what the engine's files share: the source session
 * object, the sender (data-channel workers), the domain-info record codec and
 * the in-doubt journal.
 */
#ifndef MIG_SESSION_INTERNAL_H
#define MIG_SESSION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <libmig/migrate.h>

#include "convergence.h"
#include "hooks.h"
#include "hv-provider.h"
#include "stream.h"

struct mig__sender;

struct mig_session {
    struct mig_ctx *ctx;          /* borrowed */
    struct mig_params p;          /* copy; strings borrowed from the caller */
    struct mig_fsm fsm;
    struct mig_stats st;          /* written by the session thread only */
    mig_progress_fn *progress;
    void *progress_opaque;
    uint64_t last_progress_ns;
    atomic_int cancel;            /* set by mig_session_cancel() */
    char err[512];                /* first failure, human-readable */
    char *peer_facts;             /* owned: destination facts (JSON) */
    struct mig__blob setup_blob;  /* owned: setup_state backends, made before connecting */
    char *peer_error;             /* owned: ERROR/ABORT text from the peer */
    char *preflight;              /* owned: the pre-flight verdict text */
    char *preflight_json;         /* owned: the same verdict as one JSON object */

    struct mig__hv *hv;           /* owned */
    struct mig__dom_info info;
    struct mig__link *link;       /* owned */
    struct mig__sender *sender;   /* owned */
    unsigned long *bitmap;        /* owned: nr_pages bits */
    uint64_t *pfns;               /* owned: nr_pages entries, the current round's list */
    uint64_t t_start_ns;
    uint64_t t_suspend_ns;
    bool suspended;               /* source guest paused by us */
    bool away;                    /* renamed NAME--migratedaway before COMMIT */
    bool logdirty_on;
    bool throttled;

    struct mig__hooks *hooks;     /* owned: block mirror, network handoff (hooks.h) */
    struct mig__hook_io hook_io;  /* lent to the hooks; opaque = this session */
    atomic_uint_fast64_t hook_bytes;  /* bytes: hooks' records put on data channels */
};

/* Record a human-readable failure (first one wins) and return rc. */
int mig__session_fail(struct mig_session *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- sender: one worker thread per data channel ------------------------ */

/* Shared counters the workers add to (atomics: read by the session thread). */
struct mig__send_counters {
    atomic_uint_fast64_t payload_bytes;  /* bytes: page data + zero-run records */
    atomic_uint_fast64_t zero_pages;     /* pages */
    atomic_uint_fast64_t normal_pages;   /* pages */
    atomic_uint_fast64_t compressed_bytes;
    atomic_uint_fast64_t uncompressed_bytes;
};

int mig__sender_new(struct mig_session *s, struct mig__sender **snd_out);
/* Send pfns[0..n) (NULL: pages 0..n-1) as round 'round' over every data
 * channel and wait until each channel has sent ROUND_END (and, if 'final',
 * its end-of-data mark).
 * While waiting, calls tick(s) every ~200 ms (progress, keepalive, cancel).
 * deadline_ns (mig__now_ns() clock; 0: none, ignored when final): no batch
 * starts after it, and the round ends early with pfns[*sent_out..n) unsent
 * (else *sent_out = n). Returns 0 or the first worker error. */
int mig__sender_round(struct mig__sender *snd, uint32_t round, const uint64_t *pfns, uint64_t n,
                      bool final, uint64_t deadline_ns, void (*tick)(struct mig_session *s),
                      uint64_t *sent_out);
/* Bytes/s limit shared by all channels; 0 = unlimited. */
void mig__sender_set_rate(struct mig__sender *snd, uint64_t bytes_per_s);
/* Take 'bytes' sent outside the workers (hooks) from the shared bandwidth
 * bucket; sleeps off any debt. Any thread. */
void mig__sender_consume(struct mig__sender *snd, uint64_t bytes);
const struct mig__send_counters *mig__sender_counters(const struct mig__sender *snd);
void mig__sender_free(struct mig__sender *snd); /* NULL-safe; joins the workers */

/* ---- DOMAIN_INFO ------------------------------------------------------- */

#define MIG_MAX_GUEST_PAGES (1ull << 28) /* 1 TiB of 4 KiB pages */

/* Check a received description (hostile input) and copy it into *info_out. */
int mig__dom_info_check(const struct mig__rec_dom_info *di, struct mig__dom_info *info_out);

/* ---- journals ---------------------------------------------------------- */

/* Source: the in-doubt record for a domain (written before COMMIT is sent). */
int mig__journal_write(const char *state_dir, const char *domain, const uint8_t sid[16],
                       const char *destination);
int mig__journal_read(const char *state_dir, const char *domain, uint8_t sid_out[16],
                      char *dest_out, size_t dest_len);
int mig__journal_remove(const char *state_dir, const char *domain);

/* Destination: the outcome of a session ("committing", "committed",
 * "discarded") and the name the domain has after COMMIT. */
int mig__outcome_write(const char *state_dir, const uint8_t sid[16], const char *outcome,
                       const char *name);
/* *outcome_out: MIG_OUTCOME_*; UNKNOWN for "committing" (started, not
 * known to have finished: ask the backend, mig__hv_ops.probe); DISCARDED when
 * there is no record at all, since "committing" is written, durably, before
 * any domain is started. name_out gets the recorded name ("" if none). */
int mig__outcome_read(const char *state_dir, const uint8_t sid[16], enum mig_outcome *outcome_out,
                      char *name_out, size_t name_len);

/* Destination: the claim on an incoming domain, STATE_DIR/receiving/<name>,
 * locked (flock) for as long as this process receives that domain: the lock
 * goes with the process, however it ends; the file names the session.
 * Take: -MIG_EBUSY when a live receiver holds it; *stale_out when the file
 * still named a session nobody held (its receiver died before it could
 * discard its incoming domain: stale_sid_out, for the caller to clean up).
 * *fd_out is the lock, given back by release (which removes the claim). */
int mig__claim_take(const char *state_dir, const char *name, const uint8_t sid[16], int *fd_out,
                    bool *stale_out, uint8_t stale_sid_out[16]);
void mig__claim_release(const char *state_dir, const char *name, int fd);
/* Every claim nobody holds: fn(name, its session), then the claim goes
 * (kept when fn fails). Returns fn's first failure. */
int mig__claim_sweep(const char *state_dir,
                     int (*fn)(void *opaque, const char *name, const uint8_t sid[16]),
                     void *opaque);

void mig__hex(const uint8_t *in, size_t n, char *out /* 2n+1 */);
int mig__unhex(const char *in, uint8_t *out, size_t n);

#endif
