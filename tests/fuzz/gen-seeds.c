/*
 * gen-seeds.c: writes the fuzzer's seed corpus into DIR: for every record
 * type one valid record on a plaintext (CRC) and on an encrypted channel,
 * and complete handshakes for both sides, so mutations start past the
 * header and the checksum. Usage: gen-seeds DIR
 */
#include <config.h>

#include <stdio.h>

#include "fuzz-mem.h"
#include "../../libmig/src/stream/crc32c.h"

static const char *dir;
static struct mig_ctx *ctx;

struct seed {
    struct mem_conn m;
    struct mig__stream *s;
};

static void seed_begin(struct seed *sd, bool encrypted)
{
    mem_init(&sd->m, NULL, 0, true, encrypted);
    if (mig__stream_new(ctx, &sd->m.base, 1000, &sd->s))
        abort();
}

static void seed_end(struct seed *sd, uint8_t mode, const char *name)
{
    char path[512];
    if (mig__stream_flush(sd->s))
        abort();
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputc(mode, f);
    fwrite(sd->m.out, 1, sd->m.outlen, f);
    fclose(f);
    mig__stream_free(sd->s);
    free(sd->m.out);
}

static void put_fixed(struct mig__stream *s, uint32_t type, const void *b, size_t len)
{
    struct iovec iov = {(void *)b, len};
    mig__stream_put(s, type, &iov, 1);
}

static void preamble(struct mig__stream *s)
{
    uint8_t p[32] = {0x89, 'M', 'I', 'G', '\r', '\n', 0x1a, '\n', 1};
    memcpy(p + 16, PACKAGE_VERSION, strlen(PACKAGE_VERSION));
    if (mig__stream_write_raw(s, p, sizeof(p)))
        abort();
}

/* One record of 'type' with valid contents. */
static void one_record(struct mig__stream *s, uint32_t type)
{
    static uint8_t page[2][MIG_PAGE_SIZE];
    const void *pages[2] = {page[0], page[1]};
    uint64_t pfns[2] = {1, 7};
    struct mig__zero_run runs[2] = {{0, 4}, {100, 2}};
    uint8_t sid[16] = {1, 2, 3};
    struct mig__rec_dom_info di = {.name = "web01", .nr_pages = 1024, .page_size = 4096,
                                   .vcpus = 1, .config = "dirty=1"};
    uint8_t fixed[88] = {0};
    memset(page[0], 0xaa, sizeof(page[0]));
    switch (type) {
    case MIG_REC_FACTS: mig__rec_put_text(s, type, "{\"arch\":\"x86_64\"}"); break;
    case MIG_REC_DOMAIN_INFO: mig__rec_put_dom_info(s, &di); break;
    case MIG_REC_PAGES: mig__rec_put_pages(s, 1, 2, pfns, pages); break;
    case MIG_REC_ZERO_RUNS: mig__rec_put_zero_runs(s, 1, 2, runs); break;
    case MIG_REC_PAGES_ZSTD: mig__rec_put_pages_zstd(s, 1, 2, pfns, "zstdframe", 9); break;
    case MIG_REC_PAGES_CRC: {
        /* page 0 intact, page 1 torn (its CRC is of other contents) */
        uint32_t crcs[2] = {mig__crc32c(0, page[0], MIG_PAGE_SIZE), 0x12345678u};
        mig__rec_put_pages_crc_begin(s, 1, 2, pfns, pages);
        mig__rec_put_pages_crc_end(s, 2, crcs);
        break;
    }
    case MIG_REC_BLOCK_EXTENT: mig__rec_put_block_extent(s, 0, 4096, page[0], 512); break;
    case MIG_REC_STATE_BLOB: mig__rec_put_blob(s, 3, "cpu-context", 11); break;
    case MIG_REC_ROUND_END: mig__rec_put_round_end(s, 2, 1024); break;
    case MIG_REC_ABORT:
    case MIG_REC_ERROR: mig__rec_put_code_text(s, type, 4, "something went wrong"); break;
    case MIG_REC_RESOLVE_QUERY: mig__rec_put_resolve_query(s, sid, "web01"); break;
    case MIG_REC_RESOLVE_ANSWER: mig__rec_put_resolve_answer(s, sid, 11); break;
    default:
        if (mig__rec_fixed_len(type) != UINT32_MAX && mig__rec_fixed_len(type) <= sizeof(fixed))
            put_fixed(s, type, fixed, mig__rec_fixed_len(type));
        else
            mig__rec_put_empty(s, type);
    }
}

int main(int argc, char **argv)
{
    char name[64];
    struct seed sd;
    if (argc != 2) {
        fprintf(stderr, "usage: gen-seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    if (mig_ctx_new(&ctx))
        return 1;
    mig_ctx_set_logger(ctx, NULL, NULL);
    for (uint32_t t = 1; t < MIG_REC__COUNT; t++) {
        for (int enc = 0; enc < 2; enc++) {
            seed_begin(&sd, enc);
            one_record(sd.s, t);
            one_record(sd.s, MIG_REC_READY);
            snprintf(name, sizeof(name), "rec-%s-%s", mig__rec_type_name(t), enc ? "tls" : "crc");
            seed_end(&sd, (uint8_t)enc, name);
            if (t == MIG_REC_PAGES || t == MIG_REC_PAGES_CRC) { /* through a placer */
                seed_begin(&sd, enc);
                one_record(sd.s, t);
                one_record(sd.s, t);
                one_record(sd.s, t);
                snprintf(name, sizeof(name), "placed-%s-%s", mig__rec_type_name(t),
                         enc ? "tls" : "crc");
                seed_end(&sd, (uint8_t)(8 | enc), name);
            }
        }
    }
    /* Server side: what a client sends on a control channel, then records. */
    for (int psk = 0; psk < 2; psk++) {
        uint8_t hello[48] = {0}, auth[32] = {0};
        mig__le32_put(hello, MIG_CHAN_CONTROL);
        mig__le32_put(hello + 4, 7);
        mig__le32_put(hello + 8, MIG_PAGE_SIZE);
        mig__le32_put(hello + 12, 2);
        seed_begin(&sd, false);
        preamble(sd.s);
        put_fixed(sd.s, MIG_REC_HELLO, hello, sizeof(hello));
        put_fixed(sd.s, MIG_REC_AUTH, auth, sizeof(auth));
        one_record(sd.s, MIG_REC_FACTS);
        one_record(sd.s, MIG_REC_PAGES);
        seed_end(&sd, psk ? 6 : 2, psk ? "hs-server-control-psk" : "hs-server-control");
        /* A data channel joining. */
        uint8_t join[56] = {0};
        mig__le32_put(hello, MIG_CHAN_DATA);
        mig__le32_put(hello + 12, 0);
        seed_begin(&sd, false);
        preamble(sd.s);
        put_fixed(sd.s, MIG_REC_HELLO, hello, sizeof(hello));
        put_fixed(sd.s, MIG_REC_CHANNEL_JOIN, join, sizeof(join));
        seed_end(&sd, psk ? 6 : 2, psk ? "hs-server-data-psk" : "hs-server-data");
    }
    /* Client side: what a server answers. */
    uint8_t ack[88] = {0}, sess[56] = {0};
    mig__le32_put(ack, MIG_CHAN_CONTROL);
    mig__le32_put(ack + 4, 7);
    mig__le32_put(ack + 8, MIG_PAGE_SIZE);
    mig__le32_put(ack + 12, 4);
    mig__le32_put(sess + 48, 1);
    mig__le32_put(sess + 52, 2);
    seed_begin(&sd, false);
    preamble(sd.s);
    put_fixed(sd.s, MIG_REC_HELLO_ACK, ack, sizeof(ack));
    put_fixed(sd.s, MIG_REC_SESSION, sess, sizeof(sess));
    one_record(sd.s, MIG_REC_READY);
    one_record(sd.s, MIG_REC_ERROR);
    seed_end(&sd, 3, "hs-client-control");
    /* A server refusing with ERROR after its preamble. */
    seed_begin(&sd, false);
    preamble(sd.s);
    one_record(sd.s, MIG_REC_ERROR);
    seed_end(&sd, 3, "hs-client-refused");
    mig_ctx_free(ctx);
    return 0;
}
