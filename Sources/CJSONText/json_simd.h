#ifndef SLUICE_JSON_SIMD_H
#define SLUICE_JSON_SIMD_H

// What the C scans of this target share (not part of its public header).

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
#endif

/// Whether the CPU has AVX2: found once, when the program is loaded (cpu_features.c).
extern int sluice_cpu_avx2;

#endif
