#include "sluice_json_text.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

size_t sluice_json_scan_braces(const uint8_t *p, size_t n, sluice_json_brace_state *state) {
    long depth = state->depth;
    int in_quote = state->in_quote, escape_next = state->escape_next;
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i open = _mm_set1_epi8('{'), close = _mm_set1_epi8('}');
#endif
    while (i < n) {
        if (escape_next) {
            escape_next = 0;
            i++;
            continue;
        }
#if defined(__SSE2__)
        if (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                     _mm_or_si128(_mm_cmpeq_epi8(v, open), _mm_cmpeq_epi8(v, close)));
            unsigned mask = (unsigned)_mm_movemask_epi8(m);
            if (mask == 0) {
                i += 16;
                continue;
            }
            i += (size_t)__builtin_ctz(mask);
        }
#endif
        switch (p[i]) {
        case '\\':
            escape_next = 1;
            break;
        case '"':
            in_quote = !in_quote;
            break;
        case '{':
            if (!in_quote) depth++;
            break;
        case '}':
            if (!in_quote && --depth < 0) {
                state->depth = depth;
                state->in_quote = in_quote;
                state->escape_next = escape_next;
                return i;
            }
            break;
        default:
            break;
        }
        i++;
    }
    state->depth = depth;
    state->in_quote = in_quote;
    state->escape_next = escape_next;
    return n;
}
