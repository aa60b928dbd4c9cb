/*
 * xen-image.c: Xen save images (libmig/image.h): mig_image_inspect reads
 * one with the stream parser (xen-stream.c), mig_image_save writes one of a
 * running domain through the xen: backend's source ops and the stream
 * writer: xl's header and JSON configuration, then rows 1-13 of
 * docs/xen-stream.md with every populated page, as `xl save` does.
 *
 * Entry points: mig_image_inspect, mig_image_save. Built without Xen too:
 * there the backend's open says why saving is not possible.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmig/image.h>

#define MIG_LOG_MODULE "xen-image"
#include "hv-provider.h"
#include "xen-stream.h"

/* ---- inspect ------------------------------------------------------------ */

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int count_record(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                        uint32_t len)
{
    struct mig_image_info *i = opaque;
    if (layer != MIG_XS_LAYER_LIBXC)
        return 0;
    i->records++;
    switch (type) {
    case MIG_XS_PAGE_DATA: {
        uint32_t count = get_le32(body);
        for (uint32_t k = 0; k < count; k++) {
            uint32_t t = get_le32(body + 8 + 8 * k + 4) & 0xf0000000u;
            i->data_pages += t != 0xd0000000u && t != 0xe0000000u && t != 0xf0000000u;
        }
        break;
    }
    case MIG_XS_X86_CPUID_POLICY:
        i->cpuid_leaves = len / 24;
        break;
    case MIG_XS_X86_MSR_POLICY:
        i->msr_entries = len / 16;
        break;
    case MIG_XS_HVM_CONTEXT:
        i->hvm_context_len = len;
        break;
    case MIG_XS_HVM_PARAMS:
        i->hvm_params = get_le32(body);
        break;
    case MIG_XS_X86_TSC_INFO:
        i->tsc_info = true;
        break;
    }
    return 0;
}

int mig_image_inspect(struct mig_ctx *ctx, int fd, struct mig_image_info *info_out)
{
    struct mig__xs_parse_info pi;
    memset(info_out, 0, sizeof(*info_out));
    int rc = mig__xs_parse_stream(ctx, fd, count_record, info_out, &pi);
    if (rc < 0)
        return rc;
    info_out->xl_header = pi.xl_header;
    info_out->xl_flags = pi.xl_flags;
    info_out->config_len = pi.xl_config_len;
    snprintf(info_out->name, sizeof(info_out->name), "%s", pi.xl_name);
    info_out->libxc_version = pi.version;
    info_out->xen_major = pi.xen_major;
    info_out->xen_minor = pi.xen_minor;
    info_out->pages = pi.pages;
    return 0;
}

/* ---- save --------------------------------------------------------------- */

/* The setup blob's parts (borrowed from the blob). */
struct setup {
    const uint8_t *json, *holes, *cpuid, *msr;
    uint32_t json_len, holes_len, cpuid_len, msr_len;
};

static int take_setup(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                      uint32_t len)
{
    struct setup *s = opaque;
    if (type == MIG_XS_PRIV_CONFIG) {
        s->json = body;
        s->json_len = len;
    } else if (type == MIG_XS_PRIV_HOLES) {
        s->holes = body;
        s->holes_len = len;
    } else if (type == MIG_XS_X86_CPUID_POLICY) {
        s->cpuid = body;
        s->cpuid_len = len;
    } else if (type == MIG_XS_X86_MSR_POLICY) {
        s->msr = body;
        s->msr_len = len;
    }
    return 0;
}

/* The checkpoint blob's records, in Xen's order (TSC, context, params). */
static int put_tail(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                    uint32_t len)
{
    return mig__xs_write_record(opaque, type, body, len) < 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return mig__from_errno(errno);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* xl's save_file_header (native byte order, as xl writes it), then the
 * optional data: u32 length and the JSON configuration with its NUL. */
static int write_xl_header(int fd, const struct setup *s)
{
    uint8_t hdr[MIG_XS_XL_MAGIC_LEN + 16];
    uint32_t v[4] = {MIG_XS_XL_BYTEORDER, MIG_XS_XL_JSON | MIG_XS_XL_STREAMV2, 0,
                     4 + s->json_len + 1};
    uint32_t cl = s->json_len + 1;
    memcpy(hdr, MIG_XS_XL_MAGIC, MIG_XS_XL_MAGIC_LEN);
    memcpy(hdr + MIG_XS_XL_MAGIC_LEN, v, sizeof(v));
    int rc = write_all(fd, hdr, sizeof(hdr));
    if (rc == 0)
        rc = write_all(fd, &cl, 4);
    if (rc == 0)
        rc = write_all(fd, s->json, s->json_len);
    if (rc == 0)
        rc = write_all(fd, "", 1);
    return rc;
}

/* pfn -> "a hole on the source" from the HOLES runs. */
static unsigned long *holes_bitmap(const struct setup *s, uint64_t nr_pages)
{
    const size_t bits = 8 * sizeof(unsigned long);
    unsigned long *bm = calloc((nr_pages + bits - 1) / bits, sizeof(unsigned long));
    for (uint32_t off = 0; bm && off + 16 <= s->holes_len; off += 16) {
        uint64_t start, count;
        memcpy(&start, s->holes + off, 8);
        memcpy(&count, s->holes + off + 8, 8);
        for (uint64_t pfn = start; pfn < nr_pages && pfn - start < count; pfn++)
            bm[pfn / bits] |= 1ul << (pfn % bits);
    }
    return bm;
}

/* Every populated page, in batches of up to MIG_XS_MAX_BATCH, copied out of
 * their mappings into one buffer. */
static int write_memory(struct mig__hv *hv, struct mig__xs_writer *w, uint64_t nr_pages,
                        const unsigned long *holes)
{
    const size_t bits = 8 * sizeof(unsigned long);
    uint64_t pfns[MIG_XS_MAX_BATCH];
    const void *ptrs[MIG_XS_MAX_BATCH];
    uint8_t *buf = malloc((size_t)MIG_XS_MAX_BATCH * MIG_XS_PAGE_SIZE);
    int rc = buf ? 0 : -MIG_ENOMEM;
    uint64_t pfn = 0;
    while (rc == 0 && pfn < nr_pages) {
        unsigned n = 0;
        for (; pfn < nr_pages && n < MIG_XS_MAX_BATCH; pfn++)
            if (!(holes[pfn / bits] & (1ul << (pfn % bits))))
                pfns[n++] = pfn;
        if (!n)
            break;
        struct mig__hv_map *m = NULL;
        rc = hv->ops->map_pages(hv, pfns, n, ptrs, &m);
        if (rc < 0)
            break;
        for (unsigned i = 0; i < n; i++)
            memcpy(buf + (size_t)i * MIG_XS_PAGE_SIZE, ptrs[i], MIG_XS_PAGE_SIZE);
        hv->ops->unmap_pages(hv, m);
        rc = mig__xs_write_pages(w, pfns, n, buf);
    }
    free(buf);
    return rc;
}

/* This host's Xen version from the backend's facts ("xen_version":"4.17.x"),
 * for the image's domain header. */
static void xen_version(struct mig__hv *hv, uint32_t *major, uint32_t *minor)
{
    char *facts = NULL;
    const char *p;
    unsigned a, b;
    if (hv->ops->facts(hv, &facts) == 0 && facts && (p = strstr(facts, "\"xen_version\":\"")) &&
        sscanf(p + 15, "%u.%u", &a, &b) == 2) {
        *major = a;
        *minor = b;
    }
    free(facts);
}

int mig_image_save(struct mig_ctx *ctx, const char *domain, int fd)
{
    struct mig__hv *hv = NULL;
    struct mig__blob setup_blob = {0}, ckpt = {0};
    struct mig__dom_info di;
    struct setup s = {0};
    struct mig__xs_writer w;
    unsigned long *holes = NULL;
    char *uri = NULL;
    bool suspended = false, writer = false;
    uint32_t xmaj = 0, xmin = 0;
    struct stat st;
    int rc;

    if (!domain || !*domain || fd < 0)
        return -MIG_EINVAL;
    if (strchr(domain, ':') && strncmp(domain, "xen:", 4) != 0) {
        MIG_LOG(ctx, ERROR, "%s: only xen: domains have a save image", domain);
        return -MIG_EINVAL;
    }
    uri = strncmp(domain, "xen:", 4) == 0 ? strdup(domain) : NULL;
    if (!uri && asprintf(&uri, "xen:%s", domain) < 0)
        uri = NULL;
    if (!uri)
        return -MIG_ENOMEM;
    rc = mig__hv_open(ctx, uri, MIG_ROLE_SOURCE, &hv);
    if (rc < 0)
        goto out;
    rc = hv->ops->info(hv, &di);
    if (rc == 0)
        xen_version(hv, &xmaj, &xmin);
    if (rc == 0 && !xmaj) {
        MIG_LOG(ctx, ERROR, "cannot tell this host's Xen version");
        rc = -MIG_EBACKEND;
    }
    if (rc == 0)
        rc = hv->ops->save_state(hv, &setup_blob); /* running: the setup blob */
    if (rc == 0) {
        static const uint32_t allowed[] = {MIG_XS_PRIV_CONFIG, MIG_XS_PRIV_HOLES,
                                           MIG_XS_X86_CPUID_POLICY, MIG_XS_X86_MSR_POLICY};
        rc = mig__xs_parse_records(ctx, setup_blob.data, setup_blob.len, allowed, 4, take_setup,
                                   &s);
    }
    if (rc == 0 && !s.json) {
        MIG_LOG(ctx, ERROR, "%s: the backend gave no configuration", domain);
        rc = -MIG_EBACKEND;
    }
    if (rc < 0)
        goto out;
    holes = holes_bitmap(&s, di.nr_pages);
    if (!holes) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = write_xl_header(fd, &s);
    if (rc < 0)
        goto out;
    rc = hv->ops->suspend(hv);
    if (rc < 0)
        goto out;
    suspended = true;
    mig__xs_writer_init(&w, fd);
    writer = true;
    rc = mig__xs_write_head(&w, xmaj, xmin, s.cpuid, s.cpuid_len, s.msr, s.msr_len);
    if (rc == 0)
        rc = write_memory(hv, &w, di.nr_pages, holes);
    if (rc == 0)
        rc = hv->ops->save_state(hv, &ckpt); /* suspended: TSC, context, params */
    if (rc == 0) {
        static const uint32_t allowed[] = {MIG_XS_X86_TSC_INFO, MIG_XS_HVM_CONTEXT,
                                           MIG_XS_HVM_PARAMS};
        rc = mig__xs_parse_records(ctx, ckpt.data, ckpt.len, allowed, 3, put_tail, &w);
        if (rc == -MIG_ECANCELLED)
            rc = w.err ? w.err : -MIG_EIO;
    }
    if (rc == 0)
        rc = mig__xs_write_end(&w);
    if (rc == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(fd) < 0)
        rc = mig__from_errno(errno);
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "writing the image of %s: %s", domain, mig_strerror(rc));
        goto out;
    }
    MIG_LOG(ctx, INFO, "%s saved: %" PRIu64 " pages, %" PRIu64 " MiB", di.name, w.pages,
            w.bytes >> 20);
    /* The image is complete: it is the domain now, as after `xl save`. */
    rc = hv->ops->destroy(hv);
    if (rc < 0)
        MIG_LOG(ctx, ERROR, "%s saved but not destroyed: %s", di.name, mig_strerror(rc));
    else
        suspended = false;
out:
    if (suspended && hv->ops->resume(hv) < 0)
        MIG_LOG(ctx, ERROR, "%s: could not be resumed after the failed save", domain);
    if (writer)
        mig__xs_writer_dispose(&w);
    if (hv)
        hv->ops->close(hv);
    free(setup_blob.data);
    free(ckpt.data);
    free(holes);
    free(uri);
    return rc;
}
