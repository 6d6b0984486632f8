#include "sluice_json_text.h"
#include "json_simd.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int needs_escape(uint8_t c) {
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

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

size_t sluice_utf8_valid_length(const uint8_t *src, size_t n) {
    size_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        if (i + 16 <= n && _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(src + i))) == 0) {
            i += 16;
            continue;
        }
#endif
        if (src[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = sluice_utf8_sequence_length(src + i, n - i);
        if (len == 0) return i;
        i += len;
    }
    return n;
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
static inline size_t escape_utf8(const uint8_t *src, size_t i, size_t n, uint8_t *dst, size_t *d) {
    uint8_t *o = dst + *d;
    size_t len = sluice_utf8_sequence_length(src + i, n - i);
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

/// The escaper for text with bytes from 0x80: after each byte that needs work, the scan goes on
/// from the next byte (a UTF-8 sequence is checked and copied, or becomes `\\ufffd`).
static size_t escape_mixed(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0, d = 0;
#if defined(__SSE2__)
    while (copy_plain_blocks(src, n, &i, dst, &d)) {
        i += escape_one(src, i, n, dst, &d);
        // Text in a script other than Latin is sequence after sequence: go on byte by byte
        // while it lasts rather than load a block per character.
        while (i < n && src[i] >= 0x80) i += escape_utf8(src, i, n, dst, &d);
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

/// Copies `len` (0–16) bytes without a call: two overlapping words, or single bytes under 4.
static inline __attribute__((always_inline)) void copy_short(uint8_t *dst, const uint8_t *src, size_t len) {
    if (len >= 8) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + len - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + len - 8, &b, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + len - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + len - 4, &b, 4);
    } else if (len > 0) {
        uint8_t a = src[0], b = src[len >> 1], c = src[len - 1];
        dst[0] = a;
        dst[len >> 1] = b;
        dst[len - 1] = c;
    }
}

/// The escape of a flagged ASCII byte: a quote or backslash gets a backslash before it (two
/// stores, no switch), a control byte its `escape_ascii` form.
static inline __attribute__((always_inline)) void escape_flagged_byte(uint8_t c, uint8_t *dst, size_t *d) {
    if (c < 0x20) {
        escape_ascii(c, dst, d);
    } else {
        dst[*d] = '\\';
        dst[*d + 1] = c;
        *d += 2;
    }
}

#if defined(__SSE2__)
/// Writes the `len` (≤ 16) ASCII bytes at `s` whose quotes, backslashes and control bytes are
/// the set bits of `mask`: the plain run before each flagged byte, then its escape, then the rest.
/// With `wide`, sixteen bytes can be read past any of them, so each run goes as one 16-byte store
/// (its surplus overwritten next); else as exactly its count.
static inline __attribute__((always_inline)) void escape_flagged(const uint8_t *s, size_t len, unsigned mask, int wide,
                                                                 uint8_t *dst, size_t *d) {
    size_t p = 0;
    while (mask != 0) {
        size_t k = (size_t)__builtin_ctz(mask);
        mask &= mask - 1;
        if (wide) {
            _mm_storeu_si128((__m128i *)(dst + *d), _mm_loadu_si128((const __m128i *)(s + p)));
        } else {
            copy_short(dst + *d, s + p, k - p);
        }
        *d += k - p;
        escape_flagged_byte(s[k], dst, d);
        p = k + 1;
    }
    if (wide) {
        _mm_storeu_si128((__m128i *)(dst + *d), _mm_loadu_si128((const __m128i *)(s + p)));
    } else {
        copy_short(dst + *d, s + p, len - p);
    }
    *d += len - p;
}
#endif

/// The escape of `src[i..<n]` to `dst + d` (what comes before is written); returns the end.
static size_t escape_from(const uint8_t *src, size_t n, uint8_t *dst, size_t i, size_t d) {
#if defined(__SSE2__)
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        unsigned mask = special_mask(v);
        if (mask == 0) {
            _mm_storeu_si128((__m128i *)(dst + d), v);
            i += 16;
            d += 16;
            continue;
        }
        // A byte from 0x80: `escape_mixed` (and its UTF-8 check) writes the rest. Else the mask
        // holds only quotes, backslashes and control bytes.
        if (_mm_movemask_epi8(v) != 0) return d + escape_mixed(src + i, n - i, dst + d);
        // Each flagged byte in turn; one 16-byte store per plain run while sixteen more bytes can
        // be read past the block (all but the last block).
        escape_flagged(src + i, 16, mask, i + 32 <= n, dst, &d);
        i += 16;
    }
    if (i < n && n >= 16) {
        // The last 1–15 bytes: the final sixteen's masks, shifted to start at `i`.
        size_t rest = n - i;
        unsigned shift = (unsigned)(16 - rest);
        __m128i v = _mm_loadu_si128((const __m128i *)(src + n - 16));
        if (((unsigned)_mm_movemask_epi8(v) >> shift) != 0) return d + escape_mixed(src + i, rest, dst + d);
        escape_flagged(src + i, rest, special_mask(v) >> shift, 0, dst, &d);
        return d;
    }
#endif
    for (; i < n; i++) {
        uint8_t c = src[i];
        if (c >= 0x80) return d + escape_mixed(src + i, n - i, dst + d);
        if (c < 0x20 || c == '"' || c == '\\') {
            escape_ascii(c, dst, &d);
        } else {
            dst[d++] = c;
        }
    }
    return d;
}

#if defined(__x86_64__)
#include <immintrin.h>

/// The mask of the bytes of the 32 at `v` that need escaping (see `special_mask`).
__attribute__((target("avx2"))) static inline unsigned special_mask32(__m256i v) {
    __m256i special = _mm256_or_si256(_mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v),
                                      _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')), _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\'))));
    return (unsigned)_mm256_movemask_epi8(special);
}

/// Copies `len` (0–32) bytes without a call.
__attribute__((target("avx2"))) static inline void copy_upto32(uint8_t *dst, const uint8_t *src, size_t len) {
    if (len >= 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)src);
        __m128i b = _mm_loadu_si128((const __m128i *)(src + len - 16));
        _mm_storeu_si128((__m128i *)dst, a);
        _mm_storeu_si128((__m128i *)(dst + len - 16), b);
    } else {
        copy_short(dst, src, len);
    }
}

/// Expanding eight bytes whose quotes and backslashes are the set bits of `m` (an 8-bit mask) in
/// one shuffle: `expand_index[m]` says which input byte goes to each of the sixteen output bytes
/// (0x80: a zero, where a backslash goes), `expand_backslash[m]` has the backslashes there. Built
/// once at start (8 KiB).
static uint8_t expand_index[256][16] __attribute__((aligned(16)));
static uint8_t expand_backslash[256][16] __attribute__((aligned(16)));

__attribute__((constructor)) static void build_expand_tables(void) {
    for (unsigned m = 0; m < 256; m++) {
        unsigned j = 0;
        for (unsigned i = 0; i < 8; i++) {
            if (m & (1u << i)) {
                expand_index[m][j] = 0x80;
                expand_backslash[m][j] = '\\';
                j++;
            }
            expand_index[m][j] = (uint8_t)i;
            expand_backslash[m][j] = 0;
            j++;
        }
        for (; j < 16; j++) {
            expand_index[m][j] = 0x80;
            expand_backslash[m][j] = 0;
        }
    }
}

/// Writes the eight bytes in the low half of `in` with a backslash before each flagged in `m` (one
/// shuffle, one 16-byte store at `dst + d`); returns the new end.
__attribute__((target("avx2"))) static inline size_t expand8(__m128i in, unsigned m, uint8_t *dst, size_t d) {
    __m128i out = _mm_or_si128(_mm_shuffle_epi8(in, _mm_load_si128((const __m128i *)expand_index[m])),
                               _mm_load_si128((const __m128i *)expand_backslash[m]));
    _mm_storeu_si128((__m128i *)(dst + d), out);
    return d + 8 + (size_t)__builtin_popcount(m);
}

/// Writes the thirty-two bytes at `s`, whose only bytes to escape are the quotes and backslashes
/// flagged in `mask`, with a backslash before each: four shuffles, no branch per flagged byte
/// (whose count and places a branch predictor cannot learn). Writes up to sixteen bytes past the
/// end it returns.
__attribute__((target("avx2"))) static inline size_t expand32(const uint8_t *s, unsigned mask, uint8_t *dst, size_t d) {
    for (int h = 0; h < 4; h++) {
        d = expand8(_mm_loadl_epi64((const __m128i *)(s + 8 * h)), (mask >> (8 * h)) & 0xFF, dst, d);
    }
    return d;
}

/// `sluice_json_escape` thirty-two bytes at a time (AVX2); the last 1–31 bytes go to the
/// sixteen-byte code. Each run before a flagged byte is one 32-byte store while thirty-two more
/// bytes can be read past the block, else exactly its count.
__attribute__((target("avx2"))) static size_t escape_avx2(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0, d = 0;
    while (i + 32 <= n) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(src + i));
        unsigned mask = special_mask32(v);
        if (mask == 0) {
            _mm256_storeu_si256((__m256i *)(dst + d), v);
            i += 32;
            d += 32;
            continue;
        }
        if (_mm256_movemask_epi8(v) != 0) return d + escape_mixed(src + i, n - i, dst + d);
        const uint8_t *s = src + i;
        // Quotes and backslashes only (no control byte): the shuffles.
        if (_mm256_movemask_epi8(_mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v)) == 0) {
            d = expand32(s, mask, dst, d);
            i += 32;
            continue;
        }
        int wide = i + 64 <= n;
        size_t p = 0;
        while (mask != 0) {
            size_t k = (size_t)__builtin_ctz(mask);
            mask &= mask - 1;
            if (wide) {
                _mm256_storeu_si256((__m256i *)(dst + d), _mm256_loadu_si256((const __m256i *)(s + p)));
            } else {
                copy_upto32(dst + d, s + p, k - p);
            }
            d += k - p;
            escape_flagged_byte(s[k], dst, &d);
            p = k + 1;
        }
        if (wide) {
            _mm256_storeu_si256((__m256i *)(dst + d), _mm256_loadu_si256((const __m256i *)(s + p)));
        } else {
            copy_upto32(dst + d, s + p, 32 - p);
        }
        d += 32 - p;
        i += 32;
    }
    if (i == n) return d;
    // The last 1–31 bytes, seen through the final thirty-two (n >= 32 here: nothing is read
    // outside the input). With neither a control byte nor one from 0x80 among them: eight at a
    // time by the shuffles, the last 1–7 from the final eight shifted down.
    size_t w = n - 32;
    __m256i v = _mm256_loadu_si256((const __m256i *)(src + w));
    unsigned shift = (unsigned)(i - w);
    unsigned other = (unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v))
                   | (unsigned)_mm256_movemask_epi8(v);
    if ((other >> shift) != 0) return escape_from(src, n, dst, i, d);
    unsigned mask = special_mask32(v);
    while (i + 8 <= n) {
        d = expand8(_mm_loadl_epi64((const __m128i *)(src + i)), (mask >> (i - w)) & 0xFF, dst, d);
        i += 8;
    }
    if (i < n) {
        unsigned len = (unsigned)(n - i);
        unsigned m = (mask >> (i - w)) & ((1u << len) - 1);
        __m128i in = _mm_srl_epi64(_mm_loadl_epi64((const __m128i *)(src + n - 8)), _mm_cvtsi32_si128((int)(8 * (8 - len))));
        d = expand8(in, m, dst, d) - (8 - len);   // only `len` of the eight were input
    }
    return d;
}

#endif

size_t sluice_json_escape(const uint8_t *src, size_t n, uint8_t *dst) {
#if defined(__x86_64__)
    if (n >= 32 && sluice_cpu_avx2) return escape_avx2(src, n, dst);
#endif
    return escape_from(src, n, dst, 0, 0);
}
