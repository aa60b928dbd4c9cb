/*
 * tls.c: the tls:HOST:PORT class: TCP + OpenSSL, TLS 1.3 only, mutual
 * certificate authentication against the configured CA, the server's name
 * (or IP) checked by the client. Every channel of a session (control and
 * data) is its own TLS connection. Files, in opts->pki_dir or
 * /etc/pki/migrate-live (libvirt's names): cacert.pem, servercert.pem,
 * serverkey.pem, clientcert.pem, clientkey.pem.
 *
 * A plaintext client on a TLS listener is recognised by its first byte (our
 * preamble's 0x89 where a TLS handshake starts with 0x16) and told so in
 * plaintext before the connection is closed.
 *
 * After the handshake, when both sides offer it by ALPN ("migrate-live-rec/1"),
 * the bytes travel in our own AEAD records instead of OpenSSL's: the
 * negotiated AEAD (AES-GCM or ChaCha20-Poly1305) keyed per direction from
 * the TLS 1.3 exporter (RFC 8446 7.5) through HKDF-Expand per epoch, 256 KiB
 * records, a counter nonce, new keys every 16 GiB. OpenSSL's record layer copies every plaintext byte
 * once more on each side (into its write buffer, out of its read buffer);
 * ours encrypts from the caller's pages into the send buffer and decrypts
 * into the caller's buffer, the work kernel TLS would do (this kernel has
 * none). Format: docs/stream-format.md, "tls: record protection".
 *
 * Entry point: mig__tr_tls.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MIG_LOG_MODULE "tls"
#include "../stream/stream-internal.h"
#include "fd-conn.h"
#include "transport-provider.h"

#define DEFAULT_PKI "/etc/pki/migrate-live"
#define TLS_WBUF (64u << 10)

/* Our records: [0][length: 3 bytes, big-endian][ciphertext][16-byte tag],
 * the 4-byte header as associated data. The zero first byte tells them from
 * a TLS record (0x14-0x17), such as the alert a peer sends when it refuses
 * our certificate after our side of the handshake ended. */
#define REC_MAX (256u << 10)    /* plaintext bytes per record (stream READ_CHUNK / 4) */
#define REC_HDR 4u
#define REC_TAG 16u
#define REC_WBUF ((1u << 20) + 4u * (REC_HDR + REC_TAG)) /* sealed records per write */
#define REC_SPANS 128           /* caller pieces per record */
#define REC_REKEY_DEFAULT (16ull << 30)
#define REC_ALPN "migrate-live-rec/1"
#define REC_LABEL "EXPORTER-migrate-live-records"

struct rec_dir {
    EVP_CIPHER_CTX *cx;         /* owned; keyed for this direction and epoch */
    uint8_t iv[12];
    uint64_t seq;               /* records under this key */
    uint64_t bytes;             /* plaintext bytes under this key */
    uint32_t epoch;
    bool seal;                  /* we encrypt (tx) or decrypt (rx) */
    uint8_t secret[32];         /* from the exporter; keys of every epoch derive from it */
};

struct tls_conn {
    struct fd_conn fd;          /* socket, wake pipe, deadlines */
    SSL *ssl;                   /* owned */
    uint8_t *wbuf;              /* owned: OpenSSL records TLS_WBUF (coalesces small
                                 * iovecs); ours REC_WBUF (sealed records) */
    bool server;
    bool own;                   /* our records after the handshake */
    const EVP_CIPHER *cipher;   /* ours: the handshake's AEAD */
    uint64_t rekey;             /* ours: bytes per key */
    struct rec_dir tx, rx;
    uint8_t *cbuf;              /* owned, ours: one received record */
    size_t rx_have;             /* bytes of the current record in cbuf */
    const uint8_t *pt;          /* opened plaintext not read yet (in cbuf) */
    size_t pt_len;
    int rx_err;                 /* sticky: a forged or broken record ends reading */
};

/* Log OpenSSL's queue (and empty it): errors never travel further. */
static int tls_fail(struct mig_ctx *ctx, const char *what, const char *peer)
{
    unsigned long e;
    char buf[256];
    bool any = false;
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        MIG_LOG(ctx, ERROR, "%s %s: %s", what, peer, buf);
        any = true;
    }
    if (!any)
        MIG_LOG(ctx, ERROR, "%s %s failed", what, peer);
    return -MIG_ETLS;
}

/* SIGPIPE-free section for calls that may write to the socket. */
struct nosig {
    sigset_t set, old;
};
static void nosig_begin(struct nosig *ns)
{
    sigemptyset(&ns->set);
    sigaddset(&ns->set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &ns->set, &ns->old);
}
static void nosig_end(struct nosig *ns)
{
    struct timespec zero = {0, 0};
    while (sigtimedwait(&ns->set, NULL, &zero) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &ns->old, NULL);
}

/* After the handshake the socket blocks with SO_RCVTIMEO / SO_SNDTIMEO as
 * deadlines (fewer syscalls than poll + retry); a WANT_READ / WANT_WRITE then
 * means the deadline passed. */
static void sock_tmo(int fd, int opt, int *cur, int ms)
{
    if (*cur == ms)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) == 0)
        *cur = ms;
}

static int ssl_after(struct tls_conn *c, int ret)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return c->fd.down ? -MIG_ECANCELLED : -MIG_ETIMEOUT;
    case SSL_ERROR_ZERO_RETURN:
        return -MIG_EPEER;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return c->fd.down ? -MIG_ECANCELLED : -MIG_EPEER;
    default:
        return tls_fail(c->fd.base.ctx, "TLS with", c->fd.base.peer);
    }
}

/* ---- our records ------------------------------------------------------ */

/* Key and IV of one direction for its current epoch, from the exporter. */
static int rec_key(struct tls_conn *c, struct rec_dir *d)
{
    uint8_t km[EVP_MAX_KEY_LENGTH + 12];
    char info[32];
    int klen = EVP_CIPHER_get_key_length(c->cipher), rc = 0, mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    snprintf(info, sizeof(info), "epoch %" PRIu32, d->epoch);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string("key", d->secret, sizeof(d->secret)),
        OSSL_PARAM_construct_octet_string("info", info, strlen(info)),
        OSSL_PARAM_construct_int("mode", &mode),
        OSSL_PARAM_construct_end(),
    };
    if (klen <= 0 || klen > EVP_MAX_KEY_LENGTH || !kc ||
        EVP_KDF_derive(kc, km, (size_t)klen + 12, params) != 1)
        rc = tls_fail(c->fd.base.ctx, "TLS record key derivation for", c->fd.base.peer);
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    if (rc)
        return rc;
    if (!d->cx)
        d->cx = EVP_CIPHER_CTX_new();
    if (!d->cx || EVP_CipherInit_ex(d->cx, c->cipher, NULL, km, NULL, d->seal ? 1 : 0) != 1)
        rc = tls_fail(c->fd.base.ctx, "TLS record keys for", c->fd.base.peer);
    memcpy(d->iv, km + klen, 12);
    OPENSSL_cleanse(km, sizeof(km));
    d->seq = 0;
    d->bytes = 0;
    return rc;
}

/* A direction's secret, from the TLS exporter once after the handshake
 * (the SSL object is not touched again: each direction derives its later
 * keys alone, so reader and writer threads never share OpenSSL state). */
static int rec_secret(struct tls_conn *c, struct rec_dir *d)
{
    bool c2s = d->seal != c->server; /* the client seals client-to-server */
    const char *ctxs = c2s ? "client-to-server" : "server-to-client";
    if (SSL_export_keying_material(c->ssl, d->secret, sizeof(d->secret), REC_LABEL,
                                   strlen(REC_LABEL), (const unsigned char *)ctxs, strlen(ctxs),
                                   1) != 1)
        return tls_fail(c->fd.base.ctx, "TLS key export for", c->fd.base.peer);
    return rec_key(c, d);
}

/* The record's nonce: the IV with the sequence number XORed into its last
 * 8 bytes (as TLS 1.3 does). */
static void rec_nonce(const struct rec_dir *d, uint8_t nonce[12])
{
    memcpy(nonce, d->iv, 12);
    for (unsigned i = 0; i < 8; i++)
        nonce[4 + i] ^= (uint8_t)(d->seq >> (56 - 8 * i));
}

/* After a record: count it, and move to the next epoch's key when due. */
static int rec_advance(struct tls_conn *c, struct rec_dir *d, size_t len)
{
    d->seq++;
    d->bytes += len;
    if (d->bytes < c->rekey)
        return 0;
    d->epoch++;
    return rec_key(c, d);
}

/* Seal the plaintext spans (len bytes in all) as one record at out. */
static int rec_seal(struct tls_conn *c, const struct iovec *sp, int n, size_t len, uint8_t *out)
{
    struct rec_dir *d = &c->tx;
    uint8_t nonce[12], *p = out + REC_HDR;
    int ol = 0;
    out[0] = 0;
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    rec_nonce(d, nonce);
    if (EVP_EncryptInit_ex(d->cx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(d->cx, NULL, &ol, out, REC_HDR) != 1)
        return tls_fail(c->fd.base.ctx, "TLS record to", c->fd.base.peer);
    for (int i = 0; i < n; i++) {
        if (EVP_EncryptUpdate(d->cx, p, &ol, sp[i].iov_base, (int)sp[i].iov_len) != 1)
            return tls_fail(c->fd.base.ctx, "TLS record to", c->fd.base.peer);
        p += ol;
    }
    if (EVP_EncryptFinal_ex(d->cx, p, &ol) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->cx, EVP_CTRL_AEAD_GET_TAG, REC_TAG, p + ol) != 1)
        return tls_fail(c->fd.base.ctx, "TLS record to", c->fd.base.peer);
    return rec_advance(c, d, len);
}

/* Open the record in cbuf (len plaintext bytes) into dst (may be in place). */
static int rec_open(struct tls_conn *c, size_t len, uint8_t *dst)
{
    struct rec_dir *d = &c->rx;
    uint8_t nonce[12];
    int ol = 0, fl = 0;
    rec_nonce(d, nonce);
    if (EVP_DecryptInit_ex(d->cx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(d->cx, NULL, &ol, c->cbuf, REC_HDR) != 1 ||
        EVP_DecryptUpdate(d->cx, dst, &ol, c->cbuf + REC_HDR, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->cx, EVP_CTRL_AEAD_SET_TAG, REC_TAG, c->cbuf + REC_HDR + len) != 1)
        return tls_fail(c->fd.base.ctx, "TLS record from", c->fd.base.peer);
    if (EVP_DecryptFinal_ex(d->cx, dst + ol, &fl) != 1) {
        ERR_clear_error();
        MIG_LOG(c->fd.base.ctx, ERROR,
                "TLS record %" PRIu64 " from %s failed authentication: corrupted or forged in "
                "transit",
                d->seq, c->fd.base.peer);
        return -MIG_ETLS;
    }
    return rec_advance(c, d, len);
}

/* Receive until cbuf holds 'want' bytes of the current record. A timeout
 * keeps what arrived: the next read goes on from there. */
static int rec_recv(struct tls_conn *c, size_t want, int timeout_ms)
{
    while (c->rx_have < want) {
        if (c->fd.down)
            return -MIG_ECANCELLED;
        ssize_t r = recv(c->fd.rfd, c->cbuf + c->rx_have, want - c->rx_have,
                         timeout_ms == 0 ? MSG_DONTWAIT : 0);
        if (r > 0) {
            c->rx_have += (size_t)r;
            continue;
        }
        if (r == 0)
            return c->fd.down ? -MIG_ECANCELLED : -MIG_EPEER;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return c->fd.down ? -MIG_ECANCELLED : -MIG_ETIMEOUT;
        return errno == ECONNRESET ? -MIG_EPEER : mig__from_errno(errno);
    }
    return 0;
}

static int rec_read(struct tls_conn *c, uint8_t *buf, size_t len, int timeout_ms, size_t *n_out)
{
    int rc;
    if (c->rx_err)
        return c->rx_err;
    if (!c->pt_len) {
        if (timeout_ms > 0)
            sock_tmo(c->fd.rfd, SO_RCVTIMEO, &c->fd.rcv_tmo, timeout_ms);
        if ((rc = rec_recv(c, REC_HDR, timeout_ms)))
            return rc;
        if (c->cbuf[0] != 0) {
            MIG_LOG(c->fd.base.ctx, ERROR,
                    "%s sent a TLS record (type %u) where migrate-live records were due: an "
                    "alert? (did it refuse our certificate?)",
                    c->fd.base.peer, c->cbuf[0]);
            return c->rx_err = -MIG_ETLS;
        }
        size_t rl = (size_t)c->cbuf[1] << 16 | (size_t)c->cbuf[2] << 8 | c->cbuf[3];
        if (rl == 0 || rl > REC_MAX) {
            MIG_LOG(c->fd.base.ctx, ERROR, "TLS record of %zu bytes from %s (1..%u allowed)", rl,
                    c->fd.base.peer, REC_MAX);
            return c->rx_err = -MIG_EPROTO;
        }
        if ((rc = rec_recv(c, REC_HDR + rl + REC_TAG, timeout_ms)))
            return rc;
        /* Straight into the caller's buffer when the record fits (the
         * common case: a page record's data is read in REC_MAX pieces). */
        uint8_t *dst = len >= rl ? buf : c->cbuf + REC_HDR;
        rc = rec_open(c, rl, dst);
        c->rx_have = 0;
        if (rc)
            return c->rx_err = rc;
        if (dst == buf) {
            *n_out = rl;
            return 0;
        }
        c->pt = dst;
        c->pt_len = rl;
    }
    size_t n = c->pt_len < len ? c->pt_len : len;
    memcpy(buf, c->pt, n);
    c->pt += n;
    c->pt_len -= n;
    *n_out = n;
    return 0;
}

static int rec_send(struct tls_conn *c, const uint8_t *p, size_t len, int timeout_ms)
{
    sock_tmo(c->fd.wfd, SO_SNDTIMEO, &c->fd.snd_tmo, timeout_ms);
    while (len) {
        if (c->fd.down)
            return -MIG_ECANCELLED;
        ssize_t r = send(c->fd.wfd, p, len, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return c->fd.down ? -MIG_ECANCELLED : -MIG_ETIMEOUT;
        return r < 0 && errno != EPIPE && errno != ECONNRESET ? mig__from_errno(errno)
                                                                : -MIG_EPEER;
    }
    return 0;
}

/* Cut the caller's pieces into records: up to REC_MAX bytes each, and a new
 * record where small pieces (headers, page lists) give way to page-sized
 * ones, so that the receiver's reads of page data meet whole records and
 * open them straight into place. Records collect in wbuf, one send each
 * REC_WBUF. */
static int rec_writev(struct tls_conn *c, struct iovec *iov, int iovcnt, int timeout_ms)
{
    struct iovec sp[REC_SPANS];
    size_t used = 0, off = 0;
    int i = 0, rc = 0;
    while (!rc) {
        int n = 0;
        size_t len = 0;
        bool prev_small = false;
        while (i < iovcnt && len < REC_MAX && n < REC_SPANS) {
            size_t left = iov[i].iov_len - off;
            if (!left) {
                i++;
                off = 0;
                continue;
            }
            bool big = iov[i].iov_len >= 4096;
            if (n && big && prev_small)
                break;
            size_t take = left < REC_MAX - len ? left : REC_MAX - len;
            uint8_t *base = (uint8_t *)iov[i].iov_base + off;
            if (n && (uint8_t *)sp[n - 1].iov_base + sp[n - 1].iov_len == base)
                sp[n - 1].iov_len += take;
            else
                sp[n++] = (struct iovec){base, take};
            len += take;
            off += take;
            prev_small = !big;
        }
        if (!len)
            break;
        if (used + REC_HDR + len + REC_TAG > REC_WBUF) {
            rc = rec_send(c, c->wbuf, used, timeout_ms);
            used = 0;
            if (rc)
                break;
        }
        rc = rec_seal(c, sp, n, len, c->wbuf + used);
        used += REC_HDR + len + REC_TAG;
    }
    if (!rc && used)
        rc = rec_send(c, c->wbuf, used, timeout_ms);
    return rc;
}

/* After the handshake: our records if both sides chose them by ALPN. */
static int rec_setup(struct tls_conn *c)
{
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    if (alen != strlen(REC_ALPN) || memcmp(alpn, REC_ALPN, alen)) {
        /* OpenSSL's records: read whole bursts of records per syscall */
        SSL_set_read_ahead(c->ssl, 1);
        return 0;
    }
    const SSL_CIPHER *sc = SSL_get_current_cipher(c->ssl);
    int nid = sc ? SSL_CIPHER_get_cipher_nid(sc) : NID_undef;
    /* AES-GCM and ChaCha20-Poly1305 take 12-byte nonces and 16-byte tags;
     * any other suite (CCM, if an admin enables it) gets AES-256-GCM. */
    if (nid == NID_aes_128_gcm || nid == NID_aes_256_gcm || nid == NID_chacha20_poly1305)
        c->cipher = EVP_get_cipherbynid(nid);
    else
        c->cipher = EVP_aes_256_gcm();
    free(c->wbuf);
    c->wbuf = malloc(REC_WBUF);
    c->cbuf = malloc(REC_HDR + REC_MAX + REC_TAG);
    if (!c->cipher || !c->wbuf || !c->cbuf)
        return -MIG_ENOMEM;
    c->own = true;
    c->tx.seal = true;
    int rc = rec_secret(c, &c->tx);
    return rc ? rc : rec_secret(c, &c->rx);
}

/* Server: choose our records when the client offers them. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == strlen(REC_ALPN) && !memcmp(in + i + 1, REC_ALPN, l)) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int tls_read(struct mig__conn *base, void *buf, size_t len, int timeout_ms, size_t *n_out)
{
    struct tls_conn *c = (struct tls_conn *)base;
    *n_out = 0;
    if (c->own)
        return rec_read(c, buf, len, timeout_ms, n_out);
    /* SO_RCVTIMEO 0 would never time out: a zero timeout polls for 1 ms */
    sock_tmo(c->fd.rfd, SO_RCVTIMEO, &c->fd.rcv_tmo, timeout_ms > 0 ? timeout_ms : 1);
    for (;;) {
        if (c->fd.down)
            return -MIG_ECANCELLED;
        size_t n = 0;
        int r = SSL_read_ex(c->ssl, buf, len, &n);
        if (r == 1) {
            *n_out = n;
            return 0;
        }
        return ssl_after(c, r);
    }
}

static int write_all(struct tls_conn *c, const uint8_t *p, size_t len, int timeout_ms)
{
    sock_tmo(c->fd.wfd, SO_SNDTIMEO, &c->fd.snd_tmo, timeout_ms);
    while (len) {
        if (c->fd.down)
            return -MIG_ECANCELLED;
        struct nosig ns;
        size_t n = 0;
        nosig_begin(&ns);
        int r = SSL_write_ex(c->ssl, p, len, &n);
        nosig_end(&ns);
        if (r == 1) {
            p += n;
            len -= n;
            continue;
        }
        return ssl_after(c, r);
    }
    return 0;
}

/* Adjacent iovecs (a mapped batch of guest pages usually is one range) are
 * merged and handed to SSL_write without a copy once 64 KiB long; only short
 * pieces are coalesced into wbuf. */
static int tls_writev(struct mig__conn *base, struct iovec *iov, int iovcnt, int timeout_ms)
{
    struct tls_conn *c = (struct tls_conn *)base;
    if (c->own)
        return rec_writev(c, iov, iovcnt, timeout_ms);
    size_t used = 0;
    int rc = 0;
    for (int i = 0; i < iovcnt && !rc;) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        for (i++; i < iovcnt && (const uint8_t *)iov[i].iov_base == p + len; i++)
            len += iov[i].iov_len;
        while (len && !rc) {
            if (!used && len >= TLS_WBUF) {
                size_t n = len - len % TLS_WBUF; /* whole 64 KiB pieces, no copy */
                rc = write_all(c, p, n, timeout_ms);
                p += n;
                len -= n;
                continue;
            }
            size_t n = TLS_WBUF - used < len ? TLS_WBUF - used : len;
            memcpy(c->wbuf + used, p, n);
            used += n;
            p += n;
            len -= n;
            if (used == TLS_WBUF) {
                rc = write_all(c, c->wbuf, used, timeout_ms);
                used = 0;
            }
        }
    }
    if (!rc && used)
        rc = write_all(c, c->wbuf, used, timeout_ms);
    if (!rc) {
        struct nosig ns;
        nosig_begin(&ns);
        int r = BIO_flush(SSL_get_wbio(c->ssl));
        nosig_end(&ns);
        if (r <= 0)
            rc = c->fd.down ? -MIG_ECANCELLED
                            : (errno == EAGAIN || errno == EWOULDBLOCK ? -MIG_ETIMEOUT : -MIG_EPEER);
    }
    return rc;
}

static void tls_shutdown(struct mig__conn *base)
{
    struct tls_conn *c = (struct tls_conn *)base;
    c->fd.down = true;
    (void)shutdown(c->fd.rfd, SHUT_RDWR);
    ssize_t r = write(c->fd.wake[1], "x", 1);
    (void)r;
}

static void tls_close(struct mig__conn *base)
{
    struct tls_conn *c = (struct tls_conn *)base;
    if (c->ssl) {
        struct nosig ns;
        nosig_begin(&ns);
        /* our records end with the connection: no TLS alert after them */
        if (!c->fd.down && !c->own && SSL_is_init_finished(c->ssl)) {
            /* Best-effort close_notify; never wait long for a stuck peer. */
            sock_tmo(c->fd.wfd, SO_SNDTIMEO, &c->fd.snd_tmo, 100);
            (void)SSL_shutdown(c->ssl);
        }
        nosig_end(&ns);
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    EVP_CIPHER_CTX_free(c->tx.cx);
    EVP_CIPHER_CTX_free(c->rx.cx);
    OPENSSL_cleanse(c->tx.secret, sizeof(c->tx.secret));
    OPENSSL_cleanse(c->rx.secret, sizeof(c->rx.secret));
    free(c->wbuf);
    free(c->cbuf);
    if (c->fd.rfd >= 0)
        close(c->fd.rfd);
    if (c->fd.wake[0] >= 0)
        close(c->fd.wake[0]);
    if (c->fd.wake[1] >= 0)
        close(c->fd.wake[1]);
    free(c);
}

static const struct mig__conn_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* ---- contexts --------------------------------------------------------- */

static int make_ctx(struct mig_ctx *ctx, const struct mig__link_opts *opts, bool server,
                    SSL_CTX **out)
{
    const char *dir = opts->pki_dir ? opts->pki_dir : DEFAULT_PKI;
    char ca[512], cert[512], key[512];
    SSL_CTX *sc = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!sc)
        return tls_fail(ctx, "SSL_CTX_new", "");
    snprintf(ca, sizeof(ca), "%s/cacert.pem", dir);
    snprintf(cert, sizeof(cert), "%s/%s", dir, server ? "servercert.pem" : "clientcert.pem");
    snprintf(key, sizeof(key), "%s/%s", dir, server ? "serverkey.pem" : "clientkey.pem");
    SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sc, 0); /* no resumption; SSL_read never writes tickets */
    SSL_CTX_set_mode(sc, SSL_MODE_AUTO_RETRY);
    /* No read-ahead during the handshake: our records may follow its last
     * message in the same segment (rec_setup turns it on for OpenSSL's). */
    SSL_CTX_set_default_read_buffer_len(sc, 256u << 10);
    if (server && !opts->tls_openssl_records)
        SSL_CTX_set_alpn_select_cb(sc, alpn_select, NULL);
    SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    const char *bad = NULL;
    if (SSL_CTX_load_verify_locations(sc, ca, NULL) != 1)
        bad = ca;
    else if (SSL_CTX_use_certificate_chain_file(sc, cert) != 1)
        bad = cert;
    else if (SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM) != 1)
        bad = key;
    else if (SSL_CTX_check_private_key(sc) != 1)
        bad = key;
    if (bad) {
        tls_fail(ctx, "loading", bad);
        SSL_CTX_free(sc);
        return -MIG_ETLS;
    }
    *out = sc;
    return 0;
}

/* Wrap a connected socket (owned) and run the TLS handshake. */
static int handshake(struct mig_ctx *ctx, SSL_CTX *sc, int fd, const char *host, bool server,
                     const struct mig__link_opts *opts, unsigned timeout_ms, const char *peer,
                     struct mig__conn **c_out)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    int rc;
    if (!c) {
        close(fd);
        return -MIG_ENOMEM;
    }
    c->fd.rfd = c->fd.wfd = -1;
    c->fd.wake[0] = c->fd.wake[1] = -1;
    rc = mig__fd_conn_init(&c->fd, ctx, fd, fd, MIG_AUTH_TLS, peer);
    c->fd.base.ops = &tls_ops;
    c->fd.base.encrypted = true;
    if (rc)
        goto out;
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->wbuf = malloc(TLS_WBUF);
    c->ssl = SSL_new(sc);
    if (!c->wbuf || !c->ssl) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    /* Records are collected in a 256 KiB write buffer and leave in big
     * writes (flushed at the end of every writev): one 16 KiB record per
     * syscall and per loopback packet cost more than the extra copy. */
    BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE), *buf = BIO_new(BIO_f_buffer());
    if (!sock || !buf || BIO_set_write_buffer_size(buf, 256 << 10) != 1 || BIO_up_ref(sock) != 1) {
        BIO_free(sock);
        BIO_free(buf);
        rc = tls_fail(ctx, "TLS setup with", peer);
        goto out;
    }
    BIO_push(buf, sock);
    SSL_set_bio(c->ssl, sock, buf);
    c->server = server;
    c->rekey = opts->tls_rekey_bytes ? opts->tls_rekey_bytes : REC_REKEY_DEFAULT;
    if (!server && !opts->tls_openssl_records &&
        SSL_set_alpn_protos(c->ssl, (const unsigned char *)"\x12" REC_ALPN,
                            1 + strlen(REC_ALPN)) != 0) {
        rc = tls_fail(ctx, "TLS setup with", peer);
        goto out;
    }
    if (!server && host) {
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1
                  : (SSL_set1_host(c->ssl, host) != 1 ||
                     SSL_set_tlsext_host_name(c->ssl, host) != 1)) {
            rc = tls_fail(ctx, "TLS name check setup for", peer);
            goto out;
        }
    }
    uint64_t deadline = mig__now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        struct nosig ns;
        nosig_begin(&ns);
        int r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
        nosig_end(&ns);
        if (r == 1)
            break;
        int err = SSL_get_error(c->ssl, r);
        uint64_t now = mig__now_ns();
        if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && now < deadline) {
            rc = mig__fd_conn_wait(&c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                   (int)((deadline - now) / 1000000ull) + 1);
            if (rc)
                goto out;
            continue;
        }
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK)
            MIG_LOG(ctx, ERROR, "TLS peer %s: certificate rejected: %s", peer,
                    X509_verify_cert_error_string(vr));
        if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            MIG_LOG(ctx, ERROR,
                    "TLS handshake with %s: peer closed the connection (our certificate "
                    "refused?)",
                    peer);
            rc = -MIG_ETLS;
        } else {
            rc = tls_fail(ctx, "TLS handshake with", peer);
        }
        if (now >= deadline)
            rc = -MIG_ETIMEOUT;
        goto out;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    rc = rec_setup(c);
    if (rc)
        goto out;
    X509 *pc = SSL_get1_peer_certificate(c->ssl);
    if (pc) {
        char subj[256];
        X509_NAME_oneline(X509_get_subject_name(pc), subj, sizeof(subj));
        MIG_LOG(ctx, DEBUG, "TLS 1.3 with %s, peer certificate %s, %s records", peer, subj,
                c->own ? "migrate-live" : "OpenSSL");
        X509_free(pc);
    }
    *c_out = &c->fd.base;
    return 0;
out:
    tls_close(&c->fd.base);
    return rc;
}

static unsigned tmo(const struct mig__link_opts *o)
{
    return o->timeout_ms ? o->timeout_ms : MIG_DEFAULT_TIMEOUT_MS;
}

static int tls_connect(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                       struct mig__conn **c_out)
{
    char host[256], port[16], peer[64];
    SSL_CTX *sc = NULL;
    int fd = -1;
    int rc = mig__tr_split_hostport(arg, host, sizeof(host), port, sizeof(port));
    if (rc)
        return rc;
    rc = make_ctx(ctx, opts, false, &sc);
    if (rc)
        return rc;
    rc = mig__tr_tcp_connect_fd(ctx, arg, tmo(opts), &fd);
    if (!rc) {
        snprintf(peer, sizeof(peer), "tls:%.59s", arg);
        rc = handshake(ctx, sc, fd, host, false, opts, tmo(opts), peer, c_out);
    }
    SSL_CTX_free(sc); /* SSL objects hold their own reference */
    return rc;
}

struct tls_listen {
    struct mig__listen base;
    int fd;
    SSL_CTX *sc;
    unsigned timeout_ms;
    struct mig__link_opts opts;     /* record options only (no pointers kept) */
};

static int tls_listen(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                      struct mig__listen **l_out)
{
    struct tls_listen *l = calloc(1, sizeof(*l));
    int rc;
    if (!l)
        return -MIG_ENOMEM;
    l->fd = -1;
    l->timeout_ms = tmo(opts);
    l->opts.tls_openssl_records = opts->tls_openssl_records;
    l->opts.tls_rekey_bytes = opts->tls_rekey_bytes;
    rc = make_ctx(ctx, opts, true, &l->sc);
    if (!rc)
        rc = mig__tr_tcp_listen_fd(ctx, arg, &l->fd);
    if (rc) {
        SSL_CTX_free(l->sc);
        free(l);
        return rc;
    }
    *l_out = &l->base;
    return 0;
}

/* Tell a plaintext migrate-live client, in its own framing, why it is refused. */
static void refuse_plaintext(struct mig_ctx *ctx, int fd, const char *peer)
{
    struct mig__conn *c = NULL;
    struct mig__stream *s = NULL;
    int dfd = dup(fd);
    if (dfd < 0 || mig__conn_fd_new(ctx, dfd, dfd, MIG_AUTH_NONE, peer, &c))
        return;
    if (mig__stream_new(ctx, c, 2000, &s))
        return;
    (void)mig__hs_refuse(s, MIG_ETLS,
                         "this listener requires tls: (a plaintext client connected to a TLS "
                         "port)");
    mig__stream_free(s);
    /* Closing with the client's bytes unread would send a RST that can
     * destroy our answer before the client reads it: end our side, then
     * drain until the client closes (bounded: 64 KiB or 500 ms). */
    (void)shutdown(fd, SHUT_WR);
    uint8_t sink[4096];
    size_t drained = 0;
    uint64_t end = mig__now_ns() + 500000000ull;
    while (drained < 65536 && mig__now_ns() < end &&
           mig__tr_poll(fd, POLLIN, (int)((end - mig__now_ns()) / 1000000ull) + 1) == 0) {
        ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r <= 0)
            break;
        drained += (size_t)r;
    }
}

static int tls_accept(struct mig__listen *base, int timeout_ms, struct mig__conn **c_out)
{
    struct tls_listen *l = (struct tls_listen *)base;
    char peer[64];
    int fd = -1;
    unsigned char first = 0;
    int rc = mig__tr_accept_fd(l->fd, timeout_ms, peer, sizeof(peer), &fd);
    if (rc)
        return rc;
    mig__tr_sockopts(fd, l->timeout_ms);
    rc = mig__tr_poll(fd, POLLIN, (int)l->timeout_ms);
    if (!rc && recv(fd, &first, 1, MSG_PEEK) != 1)
        rc = -MIG_EPEER;
    if (!rc && first != 0x16) {
        MIG_LOG(base->ctx, ERROR,
                "plaintext client %s on a tls: listener refused (first byte 0x%02x, not a TLS "
                "handshake)",
                peer, first);
        if (first == 0x89)
            refuse_plaintext(base->ctx, fd, peer);
        rc = -MIG_ETLS;
    }
    if (rc) {
        close(fd);
        return rc;
    }
    return handshake(base->ctx, l->sc, fd, NULL, true, &l->opts, l->timeout_ms, peer, c_out);
}

static void tls_listen_close(struct mig__listen *base)
{
    struct tls_listen *l = (struct tls_listen *)base;
    close(l->fd);
    SSL_CTX_free(l->sc);
    free(l);
}

const struct mig__tr_class mig__tr_tls = {
    .prefix = "tls",
    .max_channels = 64,
    .connect = tls_connect,
    .listen = tls_listen,
    .accept = tls_accept,
    .listen_close = tls_listen_close,
};
