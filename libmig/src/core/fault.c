/*
 * fault.c: named fault-injection points for tests (--enable-fault-injection
 * builds only; release builds compile every point to nothing).
 *
 * MIG_FAULT="POINT[@N]=ACTION[,...]" in the environment when the context is
 * created. POINT is a name the code passes to mig__fault() (see
 * docs/fault-injection.md for the list), @N restricts it to calls whose
 * argument is N (a round number), ACTION is one of:
 *   exit      _exit(86) at once, as a crash would
 *   drop      the caller drops its link (returns MIG__FAULT_DROP)
 *   error     the caller fails with -MIG_EIO
 *   corrupt   a byte of what is sent is damaged in flight (wire points)
 *   stall:S   sleep S seconds, then go on
 *   enospc    the write at this point fails as if its disk were full
 *             (-MIG_ENOSPC; "fill" is the older name)
 * Each entry fires once.
 *
 * MIG_PLANTED_BUG=NAME switches on one deliberate bug, so that the fault
 * campaign's self-test can show each of its invariant checks catches one
 * (docs/fault-injection.md). Test builds only, like the points.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIG_LOG_MODULE "fault"
#include "mig-internal.h"

#ifdef MIG_FAULT_INJECTION

struct mig__fault_entry {
    char point[48];
    long arg;              /* -1: any */
    char action[16];
    unsigned stall_s;
    bool fired;
};

int mig__fault_init(struct mig_ctx *ctx)
{
    const char *spec = getenv("MIG_FAULT");
    if (!spec || !*spec)
        return 0;
    ctx->faults = calloc(MIG_MAX_FAULTS, sizeof(*ctx->faults));
    if (!ctx->faults)
        return -MIG_ENOMEM;
    char *copy = strdup(spec), *save = NULL;
    if (!copy)
        return -MIG_ENOMEM;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        struct mig__fault_entry *e;
        char *eq = strchr(tok, '=');
        if (!eq || ctx->n_faults >= MIG_MAX_FAULTS)
            continue;
        *eq = 0;
        e = &ctx->faults[ctx->n_faults];
        memset(e, 0, sizeof(*e));
        e->arg = -1;
        char *at = strchr(tok, '@');
        if (at) {
            *at = 0;
            e->arg = strtol(at + 1, NULL, 10);
        }
        snprintf(e->point, sizeof(e->point), "%s", tok);
        char *colon = strchr(eq + 1, ':');
        if (colon) {
            *colon = 0;
            e->stall_s = (unsigned)strtoul(colon + 1, NULL, 10);
        }
        snprintf(e->action, sizeof(e->action), "%s", eq + 1);
        ctx->n_faults++;
    }
    free(copy);
    return 0;
}

bool mig__fault_any(struct mig_ctx *ctx, const char *prefix)
{
    size_t n = strlen(prefix);
    for (unsigned i = 0; ctx && i < ctx->n_faults; i++)
        if (strncmp(ctx->faults[i].point, prefix, n) == 0)
            return true;
    return false;
}

bool mig__planted(struct mig_ctx *ctx, const char *bug)
{
    (void)ctx;
    const char *env = getenv("MIG_PLANTED_BUG");
    return env && strcmp(env, bug) == 0;
}

int mig__fault(struct mig_ctx *ctx, const char *point, long arg)
{
    for (unsigned i = 0; ctx && i < ctx->n_faults; i++) {
        struct mig__fault_entry *e = &ctx->faults[i];
        if (strcmp(e->point, point) != 0 || (e->arg >= 0 && e->arg != arg))
            continue;
        /* points are reached from several threads (senders, readers) */
        if (__atomic_exchange_n(&e->fired, true, __ATOMIC_ACQ_REL))
            continue;
        MIG_LOG(ctx, WARN, "fault injection: %s@%ld -> %s", point, arg, e->action);
        if (strcmp(e->action, "exit") == 0)
            _exit(86);
        if (strcmp(e->action, "drop") == 0)
            return MIG__FAULT_DROP;
        if (strcmp(e->action, "error") == 0)
            return -MIG_EIO;
        if (strcmp(e->action, "corrupt") == 0)
            return MIG__FAULT_CORRUPT;
        if (strcmp(e->action, "enospc") == 0 || strcmp(e->action, "fill") == 0)
            return -MIG_ENOSPC; /* injected: as if the disk written here were full */
        if (strcmp(e->action, "stall") == 0)
            sleep(e->stall_s);
        return 0;
    }
    return 0;
}

#endif
