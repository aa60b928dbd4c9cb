/*
 * xen-stream.h: the Xen migration stream (libxl v2 around libxc v3) that the
 * xen: destination writes into libxl_domain_create_restore()'s fd, and an
 * independent parser of it. Contract: docs/xen-stream.md. No Xen header is
 * needed here: the record layouts are the spec's, written out.
 *
 * Entry points: mig__xs_writer_* (write side, thread-safe: records never
 * interleave), mig__xs_parse_stream (a whole stream from an fd),
 * mig__xs_parse_records (a state blob: libxc-format records in memory).
 */
#ifndef MIG_XEN_STREAM_H
#define MIG_XEN_STREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mig-internal.h"

#define MIG_XS_PAGE_SIZE 4096u
#define MIG_XS_MAX_BATCH 1024u

/* libxl v2 record types */
#define MIG_XS_LIBXL_END                    0u
#define MIG_XS_LIBXL_LIBXC_CONTEXT          1u
#define MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA 2u
#define MIG_XS_LIBXL_EMULATOR_CONTEXT       3u
#define MIG_XS_LIBXL_CHECKPOINT_END         4u
#define MIG_XS_LIBXL_CHECKPOINT_STATE       5u

/* libxc v3 record types */
#define MIG_XS_END                       0x00u
#define MIG_XS_PAGE_DATA                 0x01u
#define MIG_XS_X86_PV_INFO               0x02u
#define MIG_XS_X86_PV_P2M_FRAMES         0x03u
#define MIG_XS_X86_PV_VCPU_BASIC         0x04u
#define MIG_XS_X86_PV_VCPU_EXTENDED      0x05u
#define MIG_XS_X86_PV_VCPU_XSAVE         0x06u
#define MIG_XS_SHARED_INFO               0x07u
#define MIG_XS_X86_TSC_INFO              0x08u
#define MIG_XS_HVM_CONTEXT               0x09u
#define MIG_XS_HVM_PARAMS                0x0Au
#define MIG_XS_TOOLSTACK                 0x0Bu
#define MIG_XS_X86_PV_VCPU_MSRS          0x0Cu
#define MIG_XS_VERIFY                    0x0Du
#define MIG_XS_CHECKPOINT                0x0Eu
#define MIG_XS_CHECKPOINT_DIRTY_PFN_LIST 0x0Fu
#define MIG_XS_STATIC_DATA_END           0x10u
#define MIG_XS_X86_CPUID_POLICY          0x11u
#define MIG_XS_X86_MSR_POLICY            0x12u
#define MIG_XS_OPTIONAL                  0x80000000u

/* Private record types, only inside migrate-live's state blobs. */
#define MIG_XS_PRIV_CONFIG 0x4D4C0001u /* libxl JSON configuration */
#define MIG_XS_PRIV_HOLES  0x4D4C0002u /* {u64 pfn, u64 count}[] not populated */
/* HVM only: the bodies of libxl's emulator records, without their sub-header. */
#define MIG_XS_PRIV_EMU_XENSTORE 0x4D4C0003u /* packed "key\0value\0" pairs */
#define MIG_XS_PRIV_EMU_CONTEXT  0x4D4C0004u /* QEMU's device state (xen-save-devices-state) */

/* Emulator sub-header ids (libxl-migration-stream.pandoc) */
#define MIG_XS_EMU_UNKNOWN        0u
#define MIG_XS_EMU_QEMU_TRAD      1u
#define MIG_XS_EMU_QEMU_UPSTREAM  2u
#define MIG_XS_MAX_EMU_XENSTORE   (64u << 10) /* bytes: libxl sends a few physmap keys */
#define MIG_XS_MAX_EMU_CONTEXT    (16u << 20) /* bytes: QEMU's device state (no RAM) */

/* State blob kinds (struct mig__blob.kind) */
#define MIG_XEN_BLOB_SETUP      0x58454e53u /* "XENS" */
#define MIG_XEN_BLOB_CHECKPOINT 0x58454e43u /* "XENC" */

#define MIG_XS_LIBXL_IDENT  0x4c6962786c466d74ull /* "LibxlFmt" */
#define MIG_XS_IHDR_MARKER  0xffffffffffffffffull
#define MIG_XS_IHDR_ID      0x58454E46u /* "XENF" */
#define MIG_XS_DHDR_X86_HVM 2u

/* `xl save` image header (xl's save_file_header, docs/xen-stream.md) */
#define MIG_XS_XL_MAGIC     "Xen saved domain, xl format\n \0 \r"
#define MIG_XS_XL_MAGIC_LEN 32u
#define MIG_XS_XL_BYTEORDER 0x01020304u
#define MIG_XS_XL_JSON      0x1u /* mandatory flag: the configuration is JSON */
#define MIG_XS_XL_STREAMV2  0x2u /* mandatory flag: a libxl v2 stream follows */

/* The largest body accepted per type (0: type not allowed in a stream). */
uint32_t mig__xs_max_len(uint32_t type);
/* Check one libxc record body against its type's layout. */
int mig__xs_check_record(uint32_t type, const uint8_t *body, uint32_t len);

/* ---- writer ---------------------------------------------------------- */

struct mig__xs_writer {
    int fd;               /* borrowed: the write end */
    pthread_mutex_t lock; /* records never interleave */
    int err;              /* sticky: first failure, negative libmig code */
    uint64_t bytes;       /* bytes written */
    uint64_t pages;       /* pages written with data */
};

void mig__xs_writer_init(struct mig__xs_writer *w, int fd);
void mig__xs_writer_dispose(struct mig__xs_writer *w);
/* Rows 1-7 of the contract: libxl header, LIBXC_CONTEXT, image and domain
 * headers, CPUID/MSR policy (either may be empty: then not written),
 * STATIC_DATA_END. */
int mig__xs_write_head(struct mig__xs_writer *w, uint32_t xen_major, uint32_t xen_minor,
                       const void *cpuid, uint32_t cpuid_len, const void *msr, uint32_t msr_len);
/* One PAGE_DATA record of n (1..1024) NOTAB pages; data: n * 4096 bytes. */
int mig__xs_write_pages(struct mig__xs_writer *w, const uint64_t *pfns, unsigned n,
                        const void *data);
/* The same with every page zero. */
int mig__xs_write_zero_pages(struct mig__xs_writer *w, const uint64_t *pfns, unsigned n);
/* Any other libxc record (checked with mig__xs_check_record first). */
int mig__xs_write_record(struct mig__xs_writer *w, uint32_t type, const void *body, uint32_t len);
/* libxc END then libxl END. */
int mig__xs_write_end(struct mig__xs_writer *w);
/* HVM: libxc END, EMULATOR_XENSTORE_DATA (only if xs_len), EMULATOR_CONTEXT,
 * libxl END, in the order libxl's writer uses; both emulator records carry
 * the sub-header {QEMU upstream, index 0}. Bodies checked first. */
int mig__xs_write_end_hvm(struct mig__xs_writer *w, const void *xs, uint32_t xs_len,
                          const void *dm, uint32_t dm_len);
/* Check the body of an EMULATOR_XENSTORE_DATA as libxl's restore reads it:
 * NUL-terminated key/value pairs, keys non-empty, relative, of xenstore's
 * characters [A-Za-z0-9-/_@], values printable ASCII. */
int mig__xs_check_emu_xenstore(const uint8_t *body, uint32_t len);

/* ---- parser ---------------------------------------------------------- */

enum mig__xs_layer { MIG_XS_LAYER_LIBXL, MIG_XS_LAYER_LIBXC };

/* Called for every record, body borrowed for the call. Nonzero stops. */
typedef int mig__xs_visit_fn(void *opaque, enum mig__xs_layer layer, uint32_t type,
                             const uint8_t *body, uint32_t len);

struct mig__xs_parse_info {
    bool xl_header;   /* an `xl save` header was skipped */
    uint32_t xl_flags;      /* its mandatory flags (MIG_XS_XL_JSON | MIG_XS_XL_STREAMV2) */
    uint32_t xl_config_len; /* bytes of xl configuration (JSON, its NUL included) */
    char xl_name[64];       /* c_info.name of that configuration, "" if not found */
    uint32_t version; /* libxc image version */
    uint32_t xen_major, xen_minor;
    uint64_t pages; /* pfns in PAGE_DATA records */
};

/* Read a whole stream (optional xl header, libxl, libxc) from fd, check it
 * against the contract and visit each record. -MIG_EPROTO on any violation
 * (logged through ctx, which may be NULL). */
int mig__xs_parse_stream(struct mig_ctx *ctx, int fd, mig__xs_visit_fn *visit, void *opaque,
                         struct mig__xs_parse_info *info_out);
/* Parse libxc-format records from memory (a state blob): each type must be
 * in 'allowed' (n_allowed entries), bodies checked, padding zero. */
int mig__xs_parse_records(struct mig_ctx *ctx, const void *buf, size_t len, const uint32_t *allowed,
                          unsigned n_allowed, mig__xs_visit_fn *visit, void *opaque);
/* Append one record (header, body, zero padding) to a heap buffer. */
int mig__xs_append_record(uint8_t **buf, size_t *len, uint32_t type, const void *body,
                          uint32_t body_len);

#endif
