#include "sluice_json_text.h"
#include "json_simd.h"

#include <string.h>

static const char twice_hex[16] = "0123456789abcdef";

/// The escape of the escape of the ASCII byte `c` (a quote, a backslash or a control byte): the
/// first escape's backslash escaped again, and its quote or backslash too.
static inline __attribute__((always_inline)) size_t escape_ascii_twice(uint8_t c, uint8_t *o) {
    o[0] = '\\';
    o[1] = '\\';
    switch (c) {
    case '"': o[2] = '\\'; o[3] = '"'; return 4;
    case '\\': o[2] = '\\'; o[3] = '\\'; return 4;
    case '\n': o[2] = 'n'; return 3;
    case '\r': o[2] = 'r'; return 3;
    case '\t': o[2] = 't'; return 3;
    case '\b': o[2] = 'b'; return 3;
    case '\f': o[2] = 'f'; return 3;
    default:
        o[2] = 'u'; o[3] = '0'; o[4] = '0';
        o[5] = (uint8_t)twice_hex[c >> 4]; o[6] = (uint8_t)twice_hex[c & 0xF];
        return 7;
    }
}

/// The byte at `*i` (a quote, backslash or control byte, other ASCII, or a UTF-8 sequence) escaped
/// twice to `dst + d`; moves `*i` past it and returns the new end.
static inline __attribute__((always_inline)) size_t twice_one(const uint8_t *src, size_t n, size_t *i, uint8_t *dst, size_t d) {
    uint8_t c = src[*i];
    if (c < 0x20 || c == '"' || c == '\\') {
        d += escape_ascii_twice(c, dst + d);
        *i += 1;
    } else if (c < 0x80) {
        dst[d++] = c;
        *i += 1;
    } else {
        size_t len = sluice_utf8_sequence_length(src + *i, n - *i);
        if (len > 0) {
            for (size_t k = 0; k < len; k++) dst[d + k] = src[*i + k];
            d += len;
            *i += len;
        } else {
            // The first escape's `\ufffd`, its backslash escaped.
            memcpy(dst + d, "\\\\ufffd", 7);
            d += 7;
            *i += 1;
        }
    }
    return d;
}

/// From input byte `i` and output byte `d` on: sixteen plain bytes at a time (SSE2), the others
/// one by one.
static size_t escape_twice_from(const uint8_t *src, size_t n, uint8_t *dst, size_t i, size_t d) {
    while (i < n) {
#if defined(__SSE2__)
        // Plain bytes a block at a time, up to the next byte that needs work.
        copy_plain_blocks(src, n, &i, dst, &d);
        if (i >= n) break;
#endif
        d = twice_one(src, n, &i, dst, d);
    }
    return d;
}

#if defined(__x86_64__)
#include <immintrin.h>

/// Thirty-two plain bytes at a time (AVX2): each block stored whole, kept up to its first byte
/// that needs work (a signed compare flags the bytes from 0x80 with the controls), that byte
/// done by `twice_one`. The rest (under 32 bytes) as `escape_twice_from` does it. A block is
/// stored only while 32 input bytes are left, so at most 32 output bytes past the end, within
/// the 7 per input byte the caller has room for.
__attribute__((target("avx2"))) static size_t escape_twice_avx2(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0, d = 0;
    const __m256i space = _mm256_set1_epi8(0x20), quote = _mm256_set1_epi8('"'), backslash = _mm256_set1_epi8('\\');
    while (i + 32 <= n) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + d), v);
        __m256i special = _mm256_or_si256(_mm256_cmpgt_epi8(space, v),
                                          _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)));
        unsigned mask = (unsigned)_mm256_movemask_epi8(special);
        if (mask == 0) {
            i += 32;
            d += 32;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(mask);
        i += k;
        d += k;
        d = twice_one(src, n, &i, dst, d);
    }
    return escape_twice_from(src, n, dst, i, d);
}
#endif

size_t sluice_json_escape_twice(const uint8_t *src, size_t n, uint8_t *dst) {
#if defined(__x86_64__)
    if (n >= 32 && sluice_cpu_avx2) return escape_twice_avx2(src, n, dst);
#endif
    return escape_twice_from(src, n, dst, 0, 0);
}
