/*
 * crc32c.h: CRC32C (Castagnoli), the per-record checksum of plaintext
 * channels. Entry points: mig__crc32c (contiguous buffer), mig__crc32c_iov
 * (a record's scatter list, pages interleaved three at a time).
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
/* True when the SSE4.2 + PCLMUL path is used on this CPU. */
bool mig__crc32c_hw_available(void);

#endif
