/*
 * fuzz-stream.c: libFuzzer target for what a receiver parses from the wire:
 * the record reader and every decoder, and both sides of the handshake.
 * The first input byte picks the mode; the rest is what the peer sent.
 *   mode & 3 == 0: records on a plaintext channel (CRC checked)
 *   mode & 3 == 1: records on an encrypted channel (no CRC: the fuzzer gets
 *                  past the checksum and into the decoders)
 *   mode & 3 == 2: server handshake (control, then data join), auth by mode bit 2
 *   mode & 3 == 3: client handshake (control)
 *   mode & 8: records (modes 0, 1) go through a placer, as the destination
 *             reads PAGES and PAGES_CRC straight into a domain's memory
 * Build: make fuzz; run: tests/fuzz/run-fuzz.sh.
 */
#include <config.h>

#include <stdio.h>

#include "fuzz-mem.h"

static const uint8_t psk[] = "fuzzing pre-shared key 0123456789";

static void decode_all(const struct mig__rec *r)
{
    char *text = NULL;
    int32_t code;
    uint32_t u32;
    uint64_t u64, sum = 0;
    const void *data;
    size_t len;
    uint8_t sid[16];
    struct mig__rec_pages pg;
    struct mig__rec_zero_runs zr;
    struct mig__rec_dom_info di;

    switch (r->type) {
    case MIG_REC_PAGES:
    case MIG_REC_PAGES_ZSTD:
    case MIG_REC_PAGES_CRC:
        if (!mig__rec_get_pages(r, &pg)) {
            for (uint32_t i = 0; i < pg.count; i++)
                sum += pg.pfns[i] + (pg.crcs ? pg.crcs[i] : 0);
            if (pg.data_len)
                sum += pg.data[pg.data_len - 1];
        }
        for (uint32_t i = 0; i < r->nbad; i++) /* ascending indices into the record */
            if (r->bad[i] >= MIG_PAGES_PER_BATCH || (i && r->bad[i] <= r->bad[i - 1]))
                abort();
        break;
    case MIG_REC_ZERO_RUNS:
        if (!mig__rec_get_zero_runs(r, &zr))
            for (uint32_t i = 0; i < zr.nruns; i++)
                sum += zr.runs[i].pfn + zr.runs[i].count;
        break;
    case MIG_REC_ROUND_END:
        (void)mig__rec_get_round_end(r, &u32, &u64);
        break;
    case MIG_REC_STATE_BLOB:
        if (!mig__rec_get_blob(r, &u32, &data, &len) && len)
            sum += ((const uint8_t *)data)[len - 1];
        break;
    case MIG_REC_BLOCK_EXTENT:
        if (!mig__rec_get_block_extent(r, &u32, &u64, &data, &len) && len)
            sum += ((const uint8_t *)data)[len - 1];
        break;
    case MIG_REC_FACTS:
        if (!mig__rec_get_text(r, &text))
            sum += strlen(text);
        break;
    case MIG_REC_ABORT:
    case MIG_REC_ERROR:
        if (!mig__rec_get_code_text(r, &code, &text))
            sum += strlen(text);
        break;
    case MIG_REC_DOMAIN_INFO:
        if (!mig__rec_get_dom_info(r, &di))
            sum += strlen(di.name) + strlen(di.config);
        break;
    case MIG_REC_RESOLVE_QUERY:
        if (!mig__rec_get_resolve_query(r, sid, &text))
            sum += strlen(text);
        break;
    case MIG_REC_RESOLVE_ANSWER:
        (void)mig__rec_get_resolve_answer(r, sid, &u32);
        break;
    default:
        break;
    }
    free(text);
    /* Decoders must refuse a record of another type. */
    if (r->type != MIG_REC_PAGES && r->type != MIG_REC_PAGES_ZSTD &&
        r->type != MIG_REC_PAGES_CRC && mig__rec_get_pages(r, &pg) != -MIG_EINVAL)
        abort();
    (void)sum;
}

/* The placer of mode bit 3: a domain of 16 pages (pfn % 16), every third
 * record declined and every fifth refused. */
static uint8_t fuzz_dom[16][MIG_PAGE_SIZE];

static int fuzz_place(void *opaque, uint32_t round, uint32_t count, const uint64_t *pfns,
                      void **ptrs)
{
    unsigned *calls = opaque;
    (void)round;
    if (count == 0 || count > MIG_PAGES_PER_BATCH)
        abort(); /* the stream checks counts before it asks */
    ++*calls;
    if (*calls % 5 == 0)
        return -MIG_EPROTO;
    if (*calls % 3 == 0)
        return 1;
    for (uint32_t i = 0; i < count; i++)
        ptrs[i] = fuzz_dom[pfns[i] % 16];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mig_ctx *ctx; /* the fuzzer's own process-wide context */
    struct mem_conn m;
    struct mig__stream *s = NULL;
    struct mig__rec r;

    if (size < 1)
        return 0;
    if (!ctx && mig_ctx_new(&ctx))
        abort();
    mig_ctx_set_logger(ctx, NULL, NULL);
    uint8_t mode = data[0];
    data++;
    size--;
    mem_init(&m, data, size, false, (mode & 3) == 1);
    if (mig__stream_new(ctx, &m.base, 1000, &s))
        return 0;

    switch (mode & 3) {
    case 0:
    case 1:
    {
        unsigned calls = 0;
        struct mig__placer placer = {.place = fuzz_place, .opaque = &calls};
        mig__stream_set_handshake(s, false);
        if (mode & 8)
            mig__stream_set_placer(s, &placer);
        for (int i = 0; i < 64 && mig__stream_get(s, &r) == 0; i++)
            decode_all(&r);
        mig__stream_set_placer(s, NULL);
        break;
    }
    case 2: {
        struct mig__hs hs = {.ctx = ctx, .auth = (mode & 4) ? MIG_AUTH_PSK : MIG_AUTH_NONE,
                             .psk = psk, .psk_len = sizeof(psk) - 1, .caps = 7,
                             .page_size = MIG_PAGE_SIZE, .channels = 4};
        uint8_t nc[32], ns[32];
        uint32_t kind;
        bool taken[4] = {false, true, false, false};
        unsigned idx;
        if (mig__hs_server_hello(&hs, s, &kind, nc, ns) == 0) {
            if (kind == MIG_CHAN_CONTROL && mig__hs_server_control(&hs, s, nc, ns) == 0) {
                for (int i = 0; i < 16 && mig__stream_get(s, &r) == 0; i++)
                    decode_all(&r);
            } else if (kind == MIG_CHAN_DATA) {
                hs.neg_channels = 4;
                (void)mig__hs_server_data(&hs, s, nc, ns, taken, &idx);
            }
        }
        mig__hs_dispose(&hs);
        break;
    }
    case 3: {
        struct mig__hs hs = {.ctx = ctx, .auth = (mode & 4) ? MIG_AUTH_PSK : MIG_AUTH_NONE,
                             .psk = psk, .psk_len = sizeof(psk) - 1, .caps = 7,
                             .page_size = MIG_PAGE_SIZE, .channels = 4};
        if (mig__hs_client_control(&hs, s) == 0)
            for (int i = 0; i < 16 && mig__stream_get(s, &r) == 0; i++)
                decode_all(&r);
        mig__hs_dispose(&hs);
        break;
    }
    }
    mig__stream_free(s);
    free(m.out);
    return 0;
}
