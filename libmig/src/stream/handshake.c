/*
 * handshake.c: what happens on a channel before the first engine record:
 * preambles (magic, version), HELLO / HELLO_ACK (capabilities, page size,
 * channels, authentication mode), PSK proofs, the SESSION that hands the
 * client a one-time secret, and data channels joining with a proof of it.
 * docs/stream-format.md, "Handshake", is the spec.
 *
 * Entry points: mig__hs_client_control, mig__hs_client_data,
 * mig__hs_server_hello, mig__hs_server_control, mig__hs_server_data,
 * mig__hs_send_error, mig__hs_dispose.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define MIG_LOG_MODULE "handshake"
#include "stream-internal.h"

static const uint8_t magic[8] = {0x89, 'M', 'I', 'G', '\r', '\n', 0x1a, '\n'};

static const char *const auth_names[] = {"none", "pre-shared key", "TLS certificates",
                                         "pipe (ssh)"};

static const char *auth_name(uint32_t a)
{
    return a < 4 ? auth_names[a] : "unknown";
}

void mig__hs_dispose(struct mig__hs *hs)
{
    OPENSSL_cleanse(hs->secret, sizeof(hs->secret));
}

void mig__hs_send_error(struct mig__stream *s, int code, const char *text)
{
    if (mig__stream_error(s))
        return;
    mig__rec_put_code_text(s, MIG_REC_ERROR, code < 0 ? -code : code, text);
    (void)mig__stream_flush(s);
}

/* H(key, label, a, b, c...) = HMAC-SHA256 over the concatenation. */
static int hmac(const uint8_t *key, size_t keylen, const char *label, const void *a, size_t alen,
                const void *b, size_t blen, const void *c, size_t clen, uint8_t out[32])
{
    uint8_t buf[256];
    size_t n = strlen(label);
    if (n + alen + blen + clen > sizeof(buf))
        return -MIG_EINVAL;
    memcpy(buf, label, n);
    memcpy(buf + n, a, alen);
    memcpy(buf + n + alen, b, blen);
    if (clen)
        memcpy(buf + n + alen + blen, c, clen);
    unsigned olen = 32;
    if (!HMAC(EVP_sha256(), key, (int)keylen, buf, n + alen + blen + clen, out, &olen) ||
        olen != 32)
        return -MIG_EAUTH;
    return 0;
}

static int send_preamble(struct mig__stream *s)
{
    uint8_t p[MIG_PREAMBLE_LEN] = {0};
    memcpy(p, magic, 8);
    mig__le32_put(p + 8, MIG_STREAM_VERSION);
    mig__le32_put(p + 12, 0);
    snprintf((char *)p + 16, 16, "%s", PACKAGE_VERSION);
    return mig__stream_write_raw(s, p, sizeof(p));
}

int mig__hs_refuse(struct mig__stream *s, int code, const char *text)
{
    int rc = send_preamble(s);
    if (!rc)
        mig__hs_send_error(s, code, text);
    return rc;
}

/* Read the peer's preamble; on a mismatch tell the peer (server) and fail
 * with a message naming both sides. */
static int read_preamble(struct mig__hs *hs, struct mig__stream *s, bool tell_peer)
{
    uint8_t p[MIG_PREAMBLE_LEN];
    char msg[256];
    int rc = mig__stream_read_raw(s, p, sizeof(p));
    if (rc)
        return rc;
    if (memcmp(p, magic, 8)) {
        /* A server's ERROR after its preamble is still readable by clients
         * that sent garbage; say what we expected. */
        snprintf(msg, sizeof(msg),
                 "not a migrate-live stream (bad magic) from %s; this side speaks stream "
                 "version %u (migrate-live %s)",
                 mig__stream_conn(s)->peer, MIG_STREAM_VERSION, PACKAGE_VERSION);
        MIG_LOG(hs->ctx, ERROR, "%s", msg);
        if (tell_peer)
            mig__hs_send_error(s, MIG_EPROTO, msg);
        return mig__stream_fail(s, -MIG_EPROTO);
    }
    char sw[17];
    memcpy(sw, p + 16, 16);
    sw[16] = '\0';
    for (char *c = sw; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    snprintf(hs->peer_version, sizeof(hs->peer_version), "%s", sw);
    uint32_t v = mig__le32_get(p + 8);
    if (v != MIG_STREAM_VERSION) {
        snprintf(msg, sizeof(msg),
                 "incompatible stream versions: peer %s speaks stream version %u "
                 "(migrate-live %s); this side speaks version %u (migrate-live %s)",
                 mig__stream_conn(s)->peer, v, sw, MIG_STREAM_VERSION, PACKAGE_VERSION);
        MIG_LOG(hs->ctx, ERROR, "%s", msg);
        if (tell_peer)
            mig__hs_send_error(s, MIG_EVERSION, msg);
        return mig__stream_fail(s, -MIG_EVERSION);
    }
    return 0;
}

/* Next record, which must be 'type'; an ERROR from the peer is reported. */
static int expect(struct mig__hs *hs, struct mig__stream *s, uint32_t type, struct mig__rec *r)
{
    int rc = mig__stream_get(s, r);
    if (rc)
        return rc;
    if (r->type == MIG_REC_ERROR) {
        int32_t code = 0;
        char *text = NULL;
        if (mig__rec_get_code_text(r, &code, &text) == 0) {
            for (char *c = text; *c; c++) /* peer text: no terminal control in our logs */
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    *c = '?';
            MIG_LOG(hs->ctx, ERROR, "peer %s refused: %s", mig__stream_conn(s)->peer, text);
            free(text);
        }
        rc = (code > 0 && code < MIG_ERR_MAX) ? -code : -MIG_EPROTO;
        return mig__stream_fail(s, rc);
    }
    if (r->type != type) {
        MIG_LOG(hs->ctx, ERROR, "handshake: expected %s, got %s", mig__rec_type_name(type),
                mig__rec_type_name(r->type));
        return mig__stream_fail(s, -MIG_EPROTO);
    }
    return 0;
}

static void put_fixed(struct mig__stream *s, uint32_t type, const void *b, size_t len)
{
    struct iovec iov = {(void *)b, len};
    mig__stream_put(s, type, &iov, 1);
}

/* ---- client ------------------------------------------------------------- */

/* Preambles, HELLO, HELLO_ACK; fills nonces and checks mode and page size. */
static int client_hello(struct mig__hs *hs, struct mig__stream *s, uint32_t kind,
                        uint8_t nonce_c[32], uint8_t nonce_s[32], uint8_t proof_s[32],
                        uint32_t *caps_out, uint32_t *maxch_out)
{
    uint8_t b[48];
    struct mig__rec r;
    int rc;

    if (RAND_bytes(nonce_c, 32) != 1)
        return mig__stream_fail(s, -MIG_EIO);
    rc = send_preamble(s);
    if (rc)
        return rc;
    mig__le32_put(b, kind);
    mig__le32_put(b + 4, hs->caps);
    mig__le32_put(b + 8, hs->page_size);
    mig__le32_put(b + 12, kind == MIG_CHAN_CONTROL ? hs->channels : 0);
    memcpy(b + 16, nonce_c, 32);
    put_fixed(s, MIG_REC_HELLO, b, sizeof(b));
    rc = mig__stream_flush(s);
    if (rc)
        return rc;
    rc = read_preamble(hs, s, false);
    if (rc)
        return rc;
    rc = expect(hs, s, MIG_REC_HELLO_ACK, &r);
    if (rc)
        return rc;
    const uint8_t *p = r.payload;
    uint32_t skind = mig__le32_get(p), scaps = mig__le32_get(p + 4);
    uint32_t spage = mig__le32_get(p + 8), smax = mig__le32_get(p + 12);
    uint32_t sauth = mig__le32_get(p + 16);
    memcpy(nonce_s, p + 24, 32);
    memcpy(proof_s, p + 56, 32);
    if (skind != kind || mig__le32_get(p + 20))
        return mig__stream_fail(s, -MIG_EPROTO);
    if (spage != hs->page_size) {
        MIG_LOG(hs->ctx, ERROR, "page size mismatch: peer %u bytes, this side %u bytes", spage,
                hs->page_size);
        return mig__stream_fail(s, -MIG_EINCOMPAT);
    }
    if (sauth != (uint32_t)hs->auth) {
        MIG_LOG(hs->ctx, ERROR,
                "authentication mismatch: peer %s requires %s, this side offers %s%s",
                mig__stream_conn(s)->peer, auth_name(sauth), auth_name(hs->auth),
                sauth == MIG_AUTH_PSK ? " (give the listener's pre-shared key file)" : "");
        return mig__stream_fail(s, -MIG_EAUTH);
    }
    *caps_out = scaps;
    *maxch_out = smax;
    return 0;
}

int mig__hs_client_control(struct mig__hs *hs, struct mig__stream *s)
{
    uint8_t nonce_c[32], nonce_s[32], proof_s[32], mine[32], mask[32] = {0};
    uint32_t scaps, smax;
    struct mig__rec r;
    int rc = client_hello(hs, s, MIG_CHAN_CONTROL, nonce_c, nonce_s, proof_s, &scaps, &smax);
    if (rc)
        goto out;
    memset(mine, 0, sizeof(mine));
    if (hs->auth == MIG_AUTH_PSK) {
        rc = hmac(hs->psk, hs->psk_len, "mig-s", nonce_c, 32, nonce_s, 32, NULL, 0, mine);
        if (!rc && CRYPTO_memcmp(mine, proof_s, 32)) {
            MIG_LOG(hs->ctx, ERROR, "%s failed to prove the pre-shared key: wrong key or "
                    "impostor", mig__stream_conn(s)->peer);
            rc = -MIG_EAUTH;
        }
        if (!rc)
            rc = hmac(hs->psk, hs->psk_len, "mig-c", nonce_c, 32, nonce_s, 32, NULL, 0, mine);
        if (!rc)
            rc = hmac(hs->psk, hs->psk_len, "mig-mask", nonce_c, 32, nonce_s, 32, NULL, 0, mask);
        if (rc) {
            mig__stream_fail(s, rc);
            goto out;
        }
    }
    put_fixed(s, MIG_REC_AUTH, mine, 32);
    rc = mig__stream_flush(s);
    if (rc)
        goto out;
    rc = expect(hs, s, MIG_REC_SESSION, &r);
    if (rc)
        goto out;
    memcpy(hs->session_id, r.payload, 16);
    for (int i = 0; i < 32; i++)
        hs->secret[i] = r.payload[16 + i] ^ mask[i];
    hs->neg_caps = mig__le32_get(r.payload + 48);
    hs->neg_channels = mig__le32_get(r.payload + 52);
    if ((hs->neg_caps & ~(hs->caps & scaps)) || hs->neg_channels < 1 ||
        hs->neg_channels > hs->channels || hs->neg_channels > smax) {
        MIG_LOG(hs->ctx, ERROR, "SESSION negotiates what neither side offered");
        rc = mig__stream_fail(s, -MIG_EPROTO);
        goto out;
    }
    mig__stream_set_handshake(s, false);
out:
    OPENSSL_cleanse(mask, sizeof(mask));
    return rc;
}

int mig__hs_client_data(struct mig__hs *hs, struct mig__stream *s, unsigned index)
{
    uint8_t nonce_c[32], nonce_s[32], proof_s[32], b[56], idx[4];
    uint32_t scaps, smax;
    struct mig__rec r;
    int rc = client_hello(hs, s, MIG_CHAN_DATA, nonce_c, nonce_s, proof_s, &scaps, &smax);
    if (rc)
        return rc;
    memcpy(b, hs->session_id, 16);
    mig__le32_put(b + 16, index);
    mig__le32_put(b + 20, 0);
    mig__le32_put(idx, index);
    uint8_t msg[16 + 4 + 32];
    memcpy(msg, hs->session_id, 16);
    memcpy(msg + 16, idx, 4);
    memcpy(msg + 20, nonce_c, 32);
    rc = hmac(hs->secret, 32, "mig-join", msg, sizeof(msg), nonce_s, 32, NULL, 0, b + 24);
    if (rc)
        return mig__stream_fail(s, rc);
    put_fixed(s, MIG_REC_CHANNEL_JOIN, b, sizeof(b));
    rc = mig__stream_flush(s);
    if (rc)
        return rc;
    rc = expect(hs, s, MIG_REC_JOIN_ACK, &r);
    if (rc)
        return rc;
    if (mig__le32_get(r.payload) != index)
        return mig__stream_fail(s, -MIG_EPROTO);
    mig__stream_set_handshake(s, false);
    return 0;
}

/* ---- server ------------------------------------------------------------- */

int mig__hs_server_hello(struct mig__hs *hs, struct mig__stream *s, uint32_t *kind_out,
                         uint8_t nonce_c[32], uint8_t nonce_s[32])
{
    uint8_t b[88] = {0};
    struct mig__rec r;
    char msg[160];
    int rc = send_preamble(s);
    if (!rc)
        rc = read_preamble(hs, s, true);
    if (!rc)
        rc = expect(hs, s, MIG_REC_HELLO, &r);
    if (rc)
        return rc;
    uint32_t kind = mig__le32_get(r.payload), ccaps = mig__le32_get(r.payload + 4);
    uint32_t cpage = mig__le32_get(r.payload + 8), cch = mig__le32_get(r.payload + 12);
    memcpy(nonce_c, r.payload + 16, 32);
    if (kind != MIG_CHAN_CONTROL && kind != MIG_CHAN_DATA) {
        mig__hs_send_error(s, MIG_EPROTO, "unknown channel kind");
        return mig__stream_fail(s, -MIG_EPROTO);
    }
    if (RAND_bytes(nonce_s, 32) != 1)
        return mig__stream_fail(s, -MIG_EIO);
    mig__le32_put(b, kind);
    mig__le32_put(b + 4, hs->caps);
    mig__le32_put(b + 8, hs->page_size);
    mig__le32_put(b + 12, hs->channels);
    mig__le32_put(b + 16, hs->auth);
    memcpy(b + 24, nonce_s, 32);
    if (hs->auth == MIG_AUTH_PSK && kind == MIG_CHAN_CONTROL) {
        rc = hmac(hs->psk, hs->psk_len, "mig-s", nonce_c, 32, nonce_s, 32, NULL, 0, b + 56);
        if (rc)
            return mig__stream_fail(s, rc);
    }
    put_fixed(s, MIG_REC_HELLO_ACK, b, sizeof(b));
    rc = mig__stream_flush(s);
    if (rc)
        return rc;
    if (cpage != hs->page_size) {
        snprintf(msg, sizeof(msg), "page size mismatch: peer %u bytes, this side %u bytes", cpage,
                 hs->page_size);
        MIG_LOG(hs->ctx, ERROR, "%s", msg);
        mig__hs_send_error(s, MIG_EINCOMPAT, msg);
        return mig__stream_fail(s, -MIG_EINCOMPAT);
    }
    if (kind == MIG_CHAN_CONTROL) {
        hs->neg_caps = ccaps & hs->caps;
        hs->neg_channels = cch < hs->channels ? cch : hs->channels;
        if (hs->neg_channels < 1)
            hs->neg_channels = 1;
    }
    *kind_out = kind;
    return 0;
}

int mig__hs_server_control(struct mig__hs *hs, struct mig__stream *s, const uint8_t nonce_c[32],
                           const uint8_t nonce_s[32])
{
    uint8_t want[32], mask[32] = {0}, b[56];
    struct mig__rec r;
    int rc = expect(hs, s, MIG_REC_AUTH, &r);
    if (rc)
        goto out;
    if (hs->auth == MIG_AUTH_PSK) {
        rc = hmac(hs->psk, hs->psk_len, "mig-c", nonce_c, 32, nonce_s, 32, NULL, 0, want);
        if (!rc && CRYPTO_memcmp(want, r.payload, 32)) {
            MIG_LOG(hs->ctx, ERROR, "%s: wrong pre-shared key proof; connection refused",
                    mig__stream_conn(s)->peer);
            mig__hs_send_error(s, MIG_EAUTH, "authentication failed: wrong pre-shared key");
            rc = -MIG_EAUTH;
        }
        if (!rc)
            rc = hmac(hs->psk, hs->psk_len, "mig-mask", nonce_c, 32, nonce_s, 32, NULL, 0, mask);
        if (rc) {
            mig__stream_fail(s, rc);
            goto out;
        }
    }
    if (RAND_bytes(hs->session_id, 16) != 1 || RAND_bytes(hs->secret, 32) != 1) {
        rc = mig__stream_fail(s, -MIG_EIO);
        goto out;
    }
    memcpy(b, hs->session_id, 16);
    for (int i = 0; i < 32; i++)
        b[16 + i] = hs->secret[i] ^ mask[i];
    mig__le32_put(b + 48, hs->neg_caps);
    mig__le32_put(b + 52, hs->neg_channels);
    put_fixed(s, MIG_REC_SESSION, b, sizeof(b));
    OPENSSL_cleanse(b, sizeof(b));
    rc = mig__stream_flush(s);
    if (!rc)
        mig__stream_set_handshake(s, false);
out:
    OPENSSL_cleanse(mask, sizeof(mask));
    return rc;
}

int mig__hs_server_data(struct mig__hs *hs, struct mig__stream *s, const uint8_t nonce_c[32],
                        const uint8_t nonce_s[32], const bool *taken, unsigned *index_out)
{
    uint8_t want[32], msg[52], ack[8];
    struct mig__rec r;
    int rc = expect(hs, s, MIG_REC_CHANNEL_JOIN, &r);
    if (rc)
        return rc;
    uint32_t index = mig__le32_get(r.payload + 16);
    memcpy(msg, hs->session_id, 16);
    mig__le32_put(msg + 16, index);
    memcpy(msg + 20, nonce_c, 32);
    rc = hmac(hs->secret, 32, "mig-join", msg, sizeof(msg), nonce_s, 32, NULL, 0, want);
    if (rc)
        return mig__stream_fail(s, rc);
    if (memcmp(r.payload, hs->session_id, 16) || mig__le32_get(r.payload + 20) ||
        index >= hs->neg_channels || taken[index] || CRYPTO_memcmp(want, r.payload + 24, 32)) {
        MIG_LOG(hs->ctx, ERROR,
                "%s: data channel join refused (wrong session, index or secret)",
                mig__stream_conn(s)->peer);
        mig__hs_send_error(s, MIG_EAUTH, "data channel join refused");
        return mig__stream_fail(s, -MIG_EAUTH);
    }
    mig__le32_put(ack, index);
    mig__le32_put(ack + 4, 0);
    put_fixed(s, MIG_REC_JOIN_ACK, ack, sizeof(ack));
    rc = mig__stream_flush(s);
    if (rc)
        return rc;
    mig__stream_set_handshake(s, false);
    *index_out = index;
    return 0;
}
