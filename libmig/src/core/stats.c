/*
 * stats.c: serialisation of struct mig_stats (the progress and final report
 * of a migration) as JSON, for the CLI's --json and for policies/Ansible.
 */
#include <config.h>

#include <inttypes.h>

#include "mig-internal.h"

void mig_stats_write_json(const struct mig_stats *st, FILE *f)
{
    fprintf(f,
            "{\"total_bytes\":%" PRIu64 ",\"transferred_bytes\":%" PRIu64
            ",\"wire_bytes\":%" PRIu64 ",\"remaining_bytes\":%" PRIu64
            ",\"zero_pages\":%" PRIu64 ",\"normal_pages\":%" PRIu64
            ",\"compressed_bytes\":%" PRIu64 ",\"uncompressed_bytes\":%" PRIu64
            ",\"rounds\":%" PRIu32 ",\"pages_last_round\":%" PRIu64
            ",\"dirty_bytes_per_s\":%" PRIu64 ",\"bandwidth_bytes_per_s\":%" PRIu64
            ",\"throttle_percent\":%" PRIu32 ",\"expected_downtime_ms\":%" PRIu64
            ",\"downtime_ms\":%" PRIu64 ",\"setup_time_ms\":%" PRIu64
            ",\"total_time_ms\":%" PRIu64 ",\"dirty_tracking\":\"%s\""
            ",\"disk_bytes\":%" PRIu64 ",\"disk_sent_bytes\":%" PRIu64
            ",\"disk_forwarded_bytes\":%" PRIu64 ",\"disk_final_bytes\":%" PRIu64
            ",\"disk_forwarding\":%" PRIu32 ",\"channels\":%" PRIu32 "}",
            st->total_bytes, st->transferred_bytes, st->wire_bytes, st->remaining_bytes,
            st->zero_pages, st->normal_pages, st->compressed_bytes, st->uncompressed_bytes,
            st->rounds, st->pages_last_round, st->dirty_bytes_per_s, st->bandwidth_bytes_per_s,
            st->throttle_percent, st->expected_downtime_ms, st->downtime_ms, st->setup_time_ms,
            st->total_time_ms, st->dirty_tracking ? st->dirty_tracking : "none", st->disk_bytes,
            st->disk_sent_bytes, st->disk_forwarded_bytes, st->disk_final_bytes,
            st->disk_forwarding, st->channels);
}
