#include "sluice_json_text.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int needs_escape(uint8_t c) {
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

size_t sluice_json_copy_plain(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), v);
        // A signed compare: bytes below 0x20 and bytes from 0x80 (negative) both count.
        __m128i special = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                       _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
        unsigned mask = (unsigned)_mm_movemask_epi8(special);
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
