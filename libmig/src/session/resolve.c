/*
 * resolve.c: settling a migration left in doubt (the link died after COMMIT
 * was sent and before its ack). Reads the source's journal, asks the
 * destination it names what became of the session, then destroys the
 * paused source copy (committed there) or resumes it (discarded there).
 * When the destination cannot tell, nothing changes: never guess.
 *
 * Entry point: mig_resolve().
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#define MIG_LOG_MODULE "resolve"
#include "blk.h"
#include "session-internal.h"

static int ask_destination(struct mig_ctx *ctx, const char *dest, const uint8_t sid[16],
                           const char *domain, const struct mig_link_params *lp,
                           enum mig_outcome *o_out)
{
    struct mig__link *link = NULL;
    struct mig__rec rec;
    struct mig__link_opts lo = {
        .channels = 1,
        .timeout_ms = lp && lp->timeout_ms ? lp->timeout_ms : 10000,
        .psk_file = lp ? lp->psk_file : NULL,
        .insecure = lp ? lp->insecure : false,
        .pki_dir = lp ? lp->pki_dir : NULL,
        .ssh_command = lp ? lp->ssh_command : NULL,
        .remote_args = lp ? lp->remote_args : NULL,
    };
    int rc = mig__link_connect(ctx, dest, &lo, &link);
    if (rc < 0)
        goto out;
    rc = mig__stream_get(link->ctrl, &rec); /* the destination's facts come first */
    if (rc < 0)
        goto out;
    mig__rec_put_resolve_query(link->ctrl, sid, domain);
    rc = mig__stream_flush(link->ctrl);
    if (rc < 0)
        goto out;
    rc = mig__stream_get(link->ctrl, &rec);
    if (rc < 0)
        goto out;
    if (rec.type != MIG_REC_RESOLVE_ANSWER) {
        rc = -MIG_EPROTO;
        goto out;
    }
    uint8_t asid[16];
    uint32_t outcome;
    rc = mig__rec_get_resolve_answer(&rec, asid, &outcome);
    if (rc < 0)
        goto out;
    if (memcmp(asid, sid, 16) != 0) {
        rc = -MIG_EPROTO;
        goto out;
    }
    *o_out = outcome == MIG_OUTCOME_COMMITTED   ? MIG_OUTCOME_COMMITTED
             : outcome == MIG_OUTCOME_DISCARDED ? MIG_OUTCOME_DISCARDED
                                                : MIG_OUTCOME_UNKNOWN;
out:
    mig__link_close(link);
    return rc;
}

int mig_resolve(struct mig_ctx *ctx, const char *state_dir, const char *domain,
                const struct mig_link_params *link, enum mig_outcome *outcome_out)
{
    uint8_t sid[16];
    char dest[4096];
    struct mig__hv *hv = NULL;
    enum mig_outcome o = MIG_OUTCOME_UNKNOWN;
    if (!state_dir)
        state_dir = "/var/lib/migrate-live";
    *outcome_out = MIG_OUTCOME_UNKNOWN;
    int rc = mig__journal_read(state_dir, domain, sid, dest, sizeof(dest));
    if (rc < 0) {
        /* A journal write that a crash cut short: the domain was never
         * suspended for this migration (the journal comes first), so there
         * is nothing to settle; drop the leftover. */
        mig__journal_remove(state_dir, domain);
        MIG_LOG(ctx, ERROR, "no in-doubt migration of %s recorded in %s", domain, state_dir);
        return rc;
    }
    rc = ask_destination(ctx, dest, sid, domain, link, &o);
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "cannot ask %s about %s: %s; still in doubt", dest, domain,
                mig_strerror(rc));
        return -MIG_EINDOUBT;
    }
    *outcome_out = o;
    if (o == MIG_OUTCOME_UNKNOWN) {
        MIG_LOG(ctx, ERROR, "%s cannot tell whether %s started there; the source stays paused",
                dest, domain);
        return -MIG_EINDOUBT;
    }
    /* COMMIT was sent: the source had renamed itself NAME--migratedaway */
    char away[4200];
    bool renamed = false;
    rc = mig__hv_uri_suffix(domain, MIG_AWAY_SUFFIX, away, sizeof(away));
    if (rc == 0) {
        rc = mig__hv_open(ctx, away, MIG_ROLE_SOURCE, &hv);
        renamed = rc == 0;
    }
    if (!renamed) /* a migration journalled before it renamed */
        rc = mig__hv_open(ctx, domain, MIG_ROLE_SOURCE, &hv);
    if (rc == -MIG_ENOENT && o == MIG_OUTCOME_COMMITTED) {
        /* the source copy was destroyed before the journal could go */
        MIG_LOG(ctx, INFO, "%s runs on %s and its source copy is already gone", domain, dest);
        return mig__journal_remove(state_dir, domain);
    }
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "cannot open the source copy of %s: %s", domain, mig_strerror(rc));
        return rc;
    }
    /* the domain's own name: the URI's NAME in "prefix:NAME[,options]" */
    char name[256];
    const char *colon = strchr(domain, ':');
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(colon ? colon + 1 : domain, ","),
             colon ? colon + 1 : domain);
    /* managed disks whose writes the lost migration left held */
    mig__blk_settle(ctx, state_dir, name, o == MIG_OUTCOME_COMMITTED);
    if (o == MIG_OUTCOME_COMMITTED) {
        MIG_LOG(ctx, INFO, "%s runs on %s: destroying the paused source copy", domain, dest);
        rc = hv->ops->destroy(hv);
    } else {
        MIG_LOG(ctx, INFO, "%s was discarded on %s: resuming the source copy", domain, dest);
        rc = renamed ? hv->ops->rename(hv, name) : 0;
        if (rc < 0)
            MIG_LOG(ctx, ERROR, "cannot rename the source copy back to %s: %s", name,
                    mig_strerror(rc));
        else
            rc = hv->ops->resume(hv);
    }
    hv->ops->close(hv);
    if (rc < 0)
        return rc;
    return mig__journal_remove(state_dir, domain);
}
