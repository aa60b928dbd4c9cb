/*
 * fake-hv.h: the in-memory test backend of fake-hv.c.
 */
#ifndef TEST_FAKE_HV_H
#define TEST_FAKE_HV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hv-provider.h"

#define NPAGES 64u

/* What the last instances looked like, for the assertions (one migration at
 * a time). */
struct fake_seen {
    pthread_mutex_t lock;
    int src_logdirty_enables, src_resumes, src_destroyed;
    bool src_suspended_at_end;
    bool dst_committed, dst_discarded;
    bool fail_rename;           /* set by a test: the source's rename fails */
    unsigned redirty_at;        /* set by a test: the source's clean number N (from 1)
                                 * reports every page */
    int src_renames;
    char src_name[80];          /* the source's name after its last rename */
    uint8_t dst_mem[NPAGES * 4096];
};
extern struct fake_seen seen;
/* Set by a test: added to the byte every non-zero source page is filled with
 * (page i: i + 1 + fake_hv_salt), so no buffer left over from an earlier
 * migration in the process holds this one's checksums. */
extern uint8_t fake_hv_salt;
extern const struct mig__hv_ops fake_hv_ops;
void fake_hv_reset(void);

#endif
