#include "sluice_json_text.h"
#include "json_simd.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// The four masks of one 64-byte block: bit i is set when byte i is that character.
typedef struct {
    uint64_t quote, backslash, open, close;
} block_masks;

#if defined(__SSE2__)
static inline uint64_t eq_mask(const uint8_t *p, __m128i c) {
    uint64_t m0 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), c));
    uint64_t m1 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), c));
    uint64_t m2 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), c));
    uint64_t m3 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), c));
    return m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
}
#endif

static inline block_masks masks_of(const uint8_t *p) {
    block_masks m;
#if defined(__SSE2__)
    m.quote = eq_mask(p, _mm_set1_epi8('"'));
    m.backslash = eq_mask(p, _mm_set1_epi8('\\'));
    m.open = eq_mask(p, _mm_set1_epi8('{'));
    m.close = eq_mask(p, _mm_set1_epi8('}'));
#else
    m.quote = m.backslash = m.open = m.close = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t bit = (uint64_t)1 << i;
        switch (p[i]) {
        case '"': m.quote |= bit; break;
        case '\\': m.backslash |= bit; break;
        case '{': m.open |= bit; break;
        case '}': m.close |= bit; break;
        default: break;
        }
    }
#endif
    return m;
}

#if defined(__x86_64__)
/// `masks_of` with two 32-byte loads (AVX2) instead of four 16-byte ones per character.
__attribute__((target("avx2"))) static inline block_masks masks_of_avx2(const uint8_t *p) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)p), hi = _mm256_loadu_si256((const __m256i *)(p + 32));
#define SLUICE_EQ64(c) ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, _mm256_set1_epi8(c))) \
    | ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, _mm256_set1_epi8(c))) << 32))
    block_masks m = { SLUICE_EQ64('"'), SLUICE_EQ64('\\'), SLUICE_EQ64('{'), SLUICE_EQ64('}') };
#undef SLUICE_EQ64
    return m;
}
#endif

/// Bit i of the result is the XOR of bits 0...i of `x`: with `x` the quotes of a block, the
/// bytes from an opening quote up to (not including) its closing one.
static inline uint64_t prefix_xor(uint64_t x) {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

/// The byte-by-byte rules over the special bytes of a block only (those in `m`), in order:
/// used when the block holds a backslash or starts escaped, and to find where the depth goes
/// below zero. Returns the index of that `}` or 64; `escape_next` is left set when byte
/// `end - 1` (the block's last real byte) is an unescaped backslash.
static inline int walk_block(block_masks m, int end, long *depth, int *in_quote, int *escape_next) {
    uint64_t special = m.quote | m.backslash | m.open | m.close;
    // A byte escaped by the previous block's last backslash is skipped, whatever it is.
    int skip = *escape_next ? 0 : -1;
    *escape_next = 0;
    while (special) {
        int i = __builtin_ctzll(special);
        special &= special - 1;
        if (i == skip) continue;
        uint64_t bit = (uint64_t)1 << i;
        if (m.backslash & bit) {
            skip = i + 1;
        } else if (m.quote & bit) {
            *in_quote = !*in_quote;
        } else if (!*in_quote) {
            if (m.open & bit) {
                (*depth)++;
            } else if (--*depth < 0) {
                return i;
            }
        }
    }
    if (skip == end) *escape_next = 1;
    return 64;
}

/// The scan over `n` bytes, with `masks` (inlined) finding a block's special bytes. The last
/// part of a text under 64 bytes is the end of the 64 bytes before `p + n`, masks shifted down,
/// when the text has them; else a copy padded with bytes that mean nothing to the scan.
static inline __attribute__((always_inline)) size_t scan_with(const uint8_t *p, size_t n, sluice_json_brace_state *state,
                                                              block_masks (*masks)(const uint8_t *)) {
    long depth = state->depth;
    int in_quote = state->in_quote, escape_next = state->escape_next;
    size_t i = 0;
    uint8_t tail[64];
    while (i < n) {
        size_t len = n - i < 64 ? n - i : 64;
        block_masks m;
        if (len == 64) {
            m = masks(p + i);
        } else if (n >= 64) {
            m = masks(p + n - 64);
            int drop = 64 - (int)len;
            m.quote >>= drop;
            m.backslash >>= drop;
            m.open >>= drop;
            m.close >>= drop;
        } else {
            memset(tail, ' ', sizeof tail);
            memcpy(tail, p + i, len);
            m = masks(tail);
        }
        int found = 64;
        if (m.backslash == 0 && !escape_next) {
            // No escapes: the bytes inside strings are the prefix XOR of the quotes, and the
            // braces outside them can be counted at once unless the depth may go below zero.
            uint64_t inside = prefix_xor(m.quote) ^ (in_quote ? ~(uint64_t)0 : 0);
            uint64_t open = m.open & ~inside, close = m.close & ~inside;
            long closes = __builtin_popcountll(close);
            if (depth >= closes) {
                depth += __builtin_popcountll(open) - closes;
                in_quote = (int)(inside >> 63);
            } else {
                block_masks outside = { 0, 0, open, close };
                // Counted from the block's start with no string state: only braces outside
                // strings are left in `outside`.
                int ignored_quote = 0, ignored_escape = 0;
                found = walk_block(outside, (int)len, &depth, &ignored_quote, &ignored_escape);
                // Where it stops, the scan is outside any string.
                in_quote = found < 64 ? 0 : (int)(inside >> 63);
            }
        } else {
            found = walk_block(m, (int)len, &depth, &in_quote, &escape_next);
        }
        if (found < 64 && (size_t)found < len) {
            state->depth = depth;
            state->in_quote = in_quote;
            state->escape_next = escape_next;
            return i + (size_t)found;
        }
        i += len;
    }
    state->depth = depth;
    state->in_quote = in_quote;
    state->escape_next = escape_next;
    return n;
}

size_t sluice_json_scan_braces_sse2(const uint8_t *p, size_t n, sluice_json_brace_state *state) {
    return scan_with(p, n, state, masks_of);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static size_t scan_avx2(const uint8_t *p, size_t n, sluice_json_brace_state *state) {
    return scan_with(p, n, state, masks_of_avx2);
}

#endif

size_t sluice_json_scan_braces(const uint8_t *p, size_t n, sluice_json_brace_state *state) {
#if defined(__x86_64__)
    if (sluice_cpu_avx2) return scan_avx2(p, n, state);
#endif
    return sluice_json_scan_braces_sse2(p, n, state);
}
