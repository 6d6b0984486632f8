#include "sluice_json_text.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int needs_escape(uint8_t c) {
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

/// The mask of the bytes of `v` that need escaping: below 0x20, from 0x80, `"` and `\`.
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

/// The length of the valid UTF-8 sequence at `p` (its first byte ≥ 0x80), or 0: no overlong
/// forms, no surrogates, nothing above U+10FFFF.
static inline size_t utf8_sequence_length(const uint8_t *p, size_t avail) {
    uint8_t c0 = p[0];
#define CONT(x) (((x) & 0xC0) == 0x80)
    if (c0 >= 0xC2 && c0 <= 0xDF) return avail >= 2 && CONT(p[1]) ? 2 : 0;
    if (c0 >= 0xE0 && c0 <= 0xEF) {
        if (avail < 3) return 0;
        uint8_t c1 = p[1];
        int ok1 = c0 == 0xE0 ? (c1 >= 0xA0 && c1 <= 0xBF) : c0 == 0xED ? (c1 >= 0x80 && c1 <= 0x9F) : CONT(c1);
        return ok1 && CONT(p[2]) ? 3 : 0;
    }
    if (c0 >= 0xF0 && c0 <= 0xF4) {
        if (avail < 4) return 0;
        uint8_t c1 = p[1];
        int ok1 = c0 == 0xF0 ? (c1 >= 0x90 && c1 <= 0xBF) : c0 == 0xF4 ? (c1 >= 0x80 && c1 <= 0x8F) : CONT(c1);
        return ok1 && CONT(p[2]) && CONT(p[3]) ? 4 : 0;
    }
#undef CONT
    return 0;
}

static const char hex_digits[16] = "0123456789abcdef";

/// Writes the escape of the ASCII byte `c` (a quote, a backslash or a control byte) at `dst + *d`.
static inline __attribute__((always_inline)) void escape_ascii(uint8_t c, uint8_t *dst, size_t *d) {
    uint8_t *o = dst + *d;
    o[0] = '\\';
    switch (c) {
    case '"': o[1] = '"'; *d += 2; break;
    case '\\': o[1] = '\\'; *d += 2; break;
    case '\n': o[1] = 'n'; *d += 2; break;
    case '\r': o[1] = 'r'; *d += 2; break;
    case '\t': o[1] = 't'; *d += 2; break;
    case '\b': o[1] = 'b'; *d += 2; break;
    case '\f': o[1] = 'f'; *d += 2; break;
    default:
        o[1] = 'u'; o[2] = '0'; o[3] = '0';
        o[4] = (uint8_t)hex_digits[c >> 4]; o[5] = (uint8_t)hex_digits[c & 0xF];
        *d += 6;
        break;
    }
}

/// Writes the byte at `src + i` (≥ 0x80) with what follows it: a valid UTF-8 sequence as it is,
/// else `\ufffd` for this one byte. Returns how many source bytes it took.
static __attribute__((noinline)) size_t escape_utf8(const uint8_t *src, size_t i, size_t n, uint8_t *dst, size_t *d) {
    uint8_t *o = dst + *d;
    size_t len = utf8_sequence_length(src + i, n - i);
    if (len > 0) {
        for (size_t k = 0; k < len; k++) o[k] = src[i + k];
        *d += len;
        return len;
    }
    memcpy(o, "\\ufffd", 6);
    *d += 6;
    return 1;
}

/// The escape of the byte (or UTF-8 sequence) at `src + i`; returns how many source bytes it took.
static inline __attribute__((always_inline)) size_t escape_one(const uint8_t *src, size_t i, size_t n, uint8_t *dst, size_t *d) {
    uint8_t c = src[i];
    if (c >= 0x80) return escape_utf8(src, i, n, dst, d);
    escape_ascii(c, dst, d);
    return 1;
}

size_t sluice_json_escape(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0, d = 0;
#if defined(__SSE2__)
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + d), v);
        unsigned mask = special_mask(v);
        if (mask == 0) {
            i += 16;
            d += 16;
            continue;
        }
        size_t k = (size_t)__builtin_ctz(mask);
        i += k;
        d += k;
        i += escape_one(src, i, n, dst, &d);
    }
    if (i < n && n >= 16) {
        // The last bytes: the mask of the final sixteen, shifted to start at `i`.
        while (i < n) {
            unsigned mask = special_mask(_mm_loadu_si128((const __m128i *)(src + n - 16))) >> (16 - (n - i));
            size_t k = mask == 0 ? n - i : (size_t)__builtin_ctz(mask);
            memcpy(dst + d, src + i, k);
            i += k;
            d += k;
            if (i < n) i += escape_one(src, i, n, dst, &d);
        }
        return d;
    }
#endif
    while (i < n) {
        uint8_t c = src[i];
        if (!needs_escape(c)) {
            dst[d++] = c;
            i++;
        } else {
            i += escape_one(src, i, n, dst, &d);
        }
    }
    return d;
}
