#include "sluice_json_text.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int needs_escape(uint8_t c) {
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

/// The mask of the bytes of `v` that need escaping (see `sluice_json_copy_plain`).
#if defined(__SSE2__)
static inline unsigned special_mask(__m128i v) {
    // A signed compare: bytes below 0x20 and bytes from 0x80 (negative) both count.
    __m128i special = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    return (unsigned)_mm_movemask_epi8(special);
}
#endif

size_t sluice_json_plain_length(const uint8_t *src, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    while (i + 16 <= n) {
        unsigned mask = special_mask(_mm_loadu_si128((const __m128i *)(src + i)));
        if (mask != 0) return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (i < n && !needs_escape(src[i])) i++;
    return i;
}

size_t sluice_json_copy_plain(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0;
#if defined(__SSE2__)
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), v);
        unsigned mask = special_mask(v);
        if (mask != 0) return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (i < n) {
        uint8_t c = src[i];
        if (needs_escape(c)) return i;
        dst[i] = c;
        i++;
    }
    return i;
}
