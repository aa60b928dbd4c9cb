/*
 * crc32c.c: CRC32C with two fast paths for x86-64, picked at run time by
 * cpuid: AVX-512 VPCLMULQDQ folding (~58 GB/s in cache here) and SSE4.2 crc32
 * on three independent streams merged with one carry-less multiply per stream
 * (~25 GB/s); and a portable table fallback. Entry points in crc32c.h.
 *
 * Why three streams: the crc32 instruction has a latency of 3 cycles and a
 * throughput of 1, so one dependent chain runs at a third of the unit's speed.
 * Three chains over three consecutive 4 KiB blocks keep it busy; the partial
 * CRCs are merged by multiplying with x^(8*4096) mod P (shift_4096()).
 */
#include <config.h>

#include <string.h>

#include "crc32c.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_CRC_HW 1
#endif

#define BLOCK 4096u
/* x^(8*4096-33) mod P, bit-reflected: a 32x32 carry-less product carries one
 * extra factor x, and _mm_crc32_u64(0, v) multiplies by x^32. The unit test
 * recomputes it. */
#define K_4096 0x82f89c77u

static const uint32_t table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
    0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
    0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
    0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
    0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
    0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
    0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
    0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
    0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
    0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
    0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
    0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
    0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
    0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
    0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
    0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
    0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
    0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
    0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
    0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
    0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
    0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
    0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
    0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
    0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
    0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
    0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
    0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
    0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
    0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
    0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
    0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
    0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351
};

uint32_t mig__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#ifdef HAVE_CRC_HW
/*
 * AVX-512 VPCLMULQDQ folding (Intel's "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ", four 512-bit accumulators = 16 lanes of 16
 * bytes): where available it runs about twice as fast as three crc32
 * streams. Each 16-byte lane X (low qword = earlier bytes) moves F bits
 * forward as clmul(X.lo, x^(F+32) mod P) ^ clmul(X.hi, x^(F-32) mod P), the
 * constants bit-reflected and shifted left by one; the last lane is finished
 * with two crc32 instructions. Constants recomputed by the unit test's
 * comparison with the table implementation.
 */
#define K2048_H 0xdcb17aa4ull
#define K2048_L 0xb9e02b86ull
#define K512_H 0x740eef02ull
#define K512_L 0x9e4addf8ull
#define K384_H 0x1c291d04ull
#define K384_L 0x1d82c63daull
#define K256_H 0x1384aa63aull
#define K256_L 0xba4fc28eull
#define K128_H 0xf20c0dfeull
#define K128_L 0x14cd00bd6ull

#define VFOLD_TARGET "avx512f,avx512vl,vpclmulqdq,pclmul,sse4.2"

__attribute__((target(VFOLD_TARGET))) static inline __m512i fold512(__m512i x, __m512i k,
                                                                  __m512i data)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), data, 0x96);
}

__attribute__((target(VFOLD_TARGET))) static inline __m128i fold128(__m128i x, uint64_t kh,
                                                                  uint64_t kl)
{
    __m128i k = _mm_set_epi64x((long long)kl, (long long)kh);
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

static uint32_t hw1(uint32_t crc, const uint8_t *p, size_t len);

/* Raw CRC of len >= 256 bytes. */
__attribute__((target(VFOLD_TARGET))) static uint32_t hw_vfold(uint32_t crc, const uint8_t *p,
                                                               size_t len)
{
    const __m512i k2048 = _mm512_set_epi64(K2048_L, K2048_H, K2048_L, K2048_H, K2048_L, K2048_H,
                                           K2048_L, K2048_H);
    const __m512i k512 =
        _mm512_set_epi64(K512_L, K512_H, K512_L, K512_H, K512_L, K512_H, K512_L, K512_H);
    __m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128), x3 = _mm512_loadu_si512(p + 192);
    x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    p += 256;
    len -= 256;
    while (len >= 256) {
        x0 = fold512(x0, k2048, _mm512_loadu_si512(p));
        x1 = fold512(x1, k2048, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k2048, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k2048, _mm512_loadu_si512(p + 192));
        p += 256;
        len -= 256;
    }
    __m512i x = fold512(x0, k512, x1);
    x = fold512(x, k512, x2);
    x = fold512(x, k512, x3);
    __m128i r = _mm_xor_si128(fold128(_mm512_extracti32x4_epi32(x, 0), K384_H, K384_L),
                              fold128(_mm512_extracti32x4_epi32(x, 1), K256_H, K256_L));
    r = _mm_xor_si128(r, fold128(_mm512_extracti32x4_epi32(x, 2), K128_H, K128_L));
    r = _mm_xor_si128(r, _mm512_extracti32x4_epi32(x, 3));
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(r));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(r, 1));
    return hw1((uint32_t)c, p, len);
}

static bool vfold_available(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("vpclmulqdq");
}

__attribute__((target("sse4.2,pclmul"))) static inline uint32_t shift_4096(uint32_t crc)
{
    __m128i a = _mm_cvtsi32_si128((int)crc);
    __m128i k = _mm_cvtsi32_si128((int)K_4096);
    uint64_t prod = (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(a, k, 0x00));
    return (uint32_t)_mm_crc32_u64(0, prod);
}

/* Raw (no inversion) CRC of one stream. */
__attribute__((target("sse4.2"))) static uint32_t hw1(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

/* Raw CRC of three consecutive 4 KiB blocks a, b, c (may live anywhere). */
__attribute__((target("sse4.2,pclmul"))) static inline uint32_t hw3(uint32_t crc,
                                                                   const uint8_t *a,
                                                                   const uint8_t *b,
                                                                   const uint8_t *c)
{
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (size_t i = 0; i < BLOCK; i += 8) {
        uint64_t va, vb, vc;
        memcpy(&va, a + i, 8);
        memcpy(&vb, b + i, 8);
        memcpy(&vc, c + i, 8);
        c0 = _mm_crc32_u64(c0, va);
        c1 = _mm_crc32_u64(c1, vb);
        c2 = _mm_crc32_u64(c2, vc);
    }
    uint32_t r = shift_4096((uint32_t)c0) ^ (uint32_t)c1;
    return shift_4096(r) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2,pclmul"))) static uint32_t hw_buf(uint32_t crc, const uint8_t *p,
                                                                size_t len, bool vfold)
{
    if (vfold && len >= 256)
        return hw_vfold(crc, p, len);
    while (len >= 3 * BLOCK) {
        crc = hw3(crc, p, p + BLOCK, p + 2 * BLOCK);
        p += 3 * BLOCK;
        len -= 3 * BLOCK;
    }
    return hw1(crc, p, len);
}

__attribute__((target("sse4.2,pclmul"))) static uint32_t hw_iov(uint32_t crc,
                                                                const struct iovec *iov,
                                                                unsigned n, bool vfold)
{
    unsigned i = 0;
    while (i < n) {
        if (vfold) {
            crc = hw_buf(crc, iov[i].iov_base, iov[i].iov_len, true);
            i++;
            continue;
        }
        /* Three whole pages in a row (the PAGES record body): interleave them. */
        if (i + 2 < n && iov[i].iov_len == BLOCK && iov[i + 1].iov_len == BLOCK &&
            iov[i + 2].iov_len == BLOCK) {
            crc = hw3(crc, iov[i].iov_base, iov[i + 1].iov_base, iov[i + 2].iov_base);
            i += 3;
            continue;
        }
        crc = hw_buf(crc, iov[i].iov_base, iov[i].iov_len, false);
        i++;
    }
    return crc;
}
#endif

bool mig__crc32c_impl_available(enum mig__crc_impl impl)
{
    switch (impl) {
    case MIG_CRC_SW:
        return true;
#ifdef HAVE_CRC_HW
    case MIG_CRC_SSE42:
        return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
    case MIG_CRC_AVX512:
        return mig__crc32c_impl_available(MIG_CRC_SSE42) && vfold_available();
#endif
    default:
        return false;
    }
}

enum mig__crc_impl mig__crc32c_best(void)
{
    if (mig__crc32c_impl_available(MIG_CRC_AVX512))
        return MIG_CRC_AVX512;
    if (mig__crc32c_impl_available(MIG_CRC_SSE42))
        return MIG_CRC_SSE42;
    return MIG_CRC_SW;
}

bool mig__crc32c_hw_available(void)
{
    return mig__crc32c_best() != MIG_CRC_SW;
}

uint32_t mig__crc32c_iov_with(enum mig__crc_impl impl, uint32_t crc, const struct iovec *iov,
                              unsigned iovcnt)
{
#ifdef HAVE_CRC_HW
    if (impl != MIG_CRC_SW && mig__crc32c_impl_available(impl))
        return ~hw_iov(~crc, iov, iovcnt, impl == MIG_CRC_AVX512);
#endif
    for (unsigned i = 0; i < iovcnt; i++)
        crc = mig__crc32c_sw(crc, iov[i].iov_base, iov[i].iov_len);
    return crc;
}

uint32_t mig__crc32c(uint32_t crc, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return mig__crc32c_iov_with(mig__crc32c_best(), crc, &iov, 1);
}

uint32_t mig__crc32c_iov(uint32_t crc, const struct iovec *iov, unsigned iovcnt)
{
    return mig__crc32c_iov_with(mig__crc32c_best(), crc, iov, iovcnt);
}
