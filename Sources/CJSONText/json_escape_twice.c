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

size_t sluice_json_escape_twice(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0, d = 0;
    while (i < n) {
#if defined(__SSE2__)
        // Plain bytes a block at a time, up to the next byte that needs work.
        copy_plain_blocks(src, n, &i, dst, &d);
        if (i >= n) break;
#endif
        uint8_t c = src[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            d += escape_ascii_twice(c, dst + d);
            i++;
        } else if (c < 0x80) {
            dst[d++] = c;
            i++;
        } else {
            size_t len = sluice_utf8_sequence_length(src + i, n - i);
            if (len > 0) {
                for (size_t k = 0; k < len; k++) dst[d + k] = src[i + k];
                d += len;
                i += len;
            } else {
                // The first escape's `\ufffd`, its backslash escaped.
                memcpy(dst + d, "\\\\ufffd", 7);
                d += 7;
                i++;
            }
        }
    }
    return d;
}
