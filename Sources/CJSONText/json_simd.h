#ifndef SLUICE_JSON_SIMD_H
#define SLUICE_JSON_SIMD_H

// What the C scans of this target share (not part of its public header).

#include <stddef.h>
#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>

/// The mask of the bytes of `v` that need JSON escaping: below 0x20, from 0x80, `"` and `\`.
static inline unsigned special_mask(__m128i v) {
    // A signed compare: bytes below 0x20 and bytes from 0x80 (negative) both count.
    __m128i special = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    return (unsigned)_mm_movemask_epi8(special);
}

/// Copies the plain bytes at `src + *i` to `dst + *d` sixteen at a time (each block stored
/// whole, so `dst` needs room for it), moving both positions, up to the first byte that needs
/// escaping: 1 when `*i` is at one, 0 when fewer than sixteen bytes are left.
static inline __attribute__((always_inline)) int copy_plain_blocks(const uint8_t *src, size_t n, size_t *i, uint8_t *dst, size_t *d) {
    while (*i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + *i));
        _mm_storeu_si128((__m128i *)(dst + *d), v);
        unsigned mask = special_mask(v);
        if (mask != 0) {
            unsigned k = (unsigned)__builtin_ctz(mask);
            *i += k;
            *d += k;
            return 1;
        }
        *i += 16;
        *d += 16;
    }
    return 0;
}
#endif

/// Whether the CPU has AVX2: found once, when the program is loaded (cpu_features.c).
extern int sluice_cpu_avx2;

#endif
