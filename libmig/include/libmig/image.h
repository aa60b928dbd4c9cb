/*
 * image.h: Xen save images, the files `xl save` writes and `xl restore`
 * reads (an xl header and configuration, then the libxl v2 / libxc v3
 * stream of docs/xen-stream.md).
 *
 * mig_image_inspect() reads one (ours or stock) and says what it holds;
 * mig_image_save() writes one of a running domain, as `xl save` does: the
 * domain is suspended, written out and destroyed once the image is complete,
 * or resumed if anything fails.
 */
#ifndef LIBMIG_IMAGE_H
#define LIBMIG_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an image holds. */
struct mig_image_info {
    bool xl_header;             /* an `xl save` header came first */
    uint32_t xl_flags;          /* its mandatory flags (1: JSON configuration, 2: libxl v2) */
    uint32_t config_len;        /* bytes of xl configuration */
    char name[64];              /* the configuration's domain name, "" if none */
    uint32_t libxc_version;     /* libxc image version (2 or 3) */
    uint32_t xen_major;         /* the Xen that wrote it */
    uint32_t xen_minor;
    uint64_t pages;             /* pfn entries in PAGE_DATA records */
    uint64_t data_pages;        /* of which carry a page of data */
    uint32_t cpuid_leaves;      /* X86_CPUID_POLICY entries */
    uint32_t msr_entries;       /* X86_MSR_POLICY entries */
    uint32_t hvm_context_len;   /* bytes of HVM_CONTEXT */
    uint32_t hvm_params;        /* HVM_PARAMS entries */
    bool tsc_info;              /* an X86_TSC_INFO record */
    uint32_t records;           /* libxc records, END included */
};

/* Read a whole image from fd and check it against docs/xen-stream.md (what
 * our parser accepts). 0 and info filled, or a negative MIG_E* (the reason
 * is logged through ctx). */
MIG_EXPORT int mig_image_inspect(struct mig_ctx *ctx, int fd, struct mig_image_info *info_out);

/* Save 'domain' ("xen:NAME", NAME, domid or UUID) into fd as `xl save` does,
 * an image `xl restore` accepts. On success the domain has been destroyed
 * (the image is its only copy, fsync'ed when fd is a file); on any failure
 * it runs again as before and what was written to fd is to be discarded. */
MIG_EXPORT int mig_image_save(struct mig_ctx *ctx, const char *domain, int fd);

#ifdef __cplusplus
}
#endif

#endif
