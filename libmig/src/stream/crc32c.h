/*
 * crc32c.h: CRC32C (Castagnoli), the per-record checksum of plaintext
 * channels. Entry points: mig__crc32c (contiguous buffer), mig__crc32c_iov
 * (a record's scatter list).
 */
#ifndef MIG_CRC32C_H
#define MIG_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Continue a CRC32C: start with crc = 0; the pre/post inversion is inside.
 * mig__crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t mig__crc32c(uint32_t crc, const void *buf, size_t len);
/* Same over the concatenation of iov[0..iovcnt). */
uint32_t mig__crc32c_iov(uint32_t crc, const struct iovec *iov, unsigned iovcnt);
/* The portable table implementation (the fallback; exposed for tests). */
uint32_t mig__crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* Implementations, fastest last; the best available one is used. */
enum mig__crc_impl {
    MIG_CRC_SW,       /* portable table */
    MIG_CRC_SSE42,    /* three crc32 streams merged by PCLMUL */
    MIG_CRC_AVX512,   /* VPCLMULQDQ folding of four 512-bit accumulators */
};
bool mig__crc32c_impl_available(enum mig__crc_impl impl);
enum mig__crc_impl mig__crc32c_best(void);
/* With a given implementation (falls back to the table if unavailable): tests. */
uint32_t mig__crc32c_iov_with(enum mig__crc_impl impl, uint32_t crc, const struct iovec *iov,
                              unsigned iovcnt);
/* True when a hardware path is used on this CPU. */
bool mig__crc32c_hw_available(void);

#endif
