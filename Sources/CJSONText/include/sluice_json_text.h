#ifndef SLUICE_JSON_TEXT_H
#define SLUICE_JSON_TEXT_H

#include <stddef.h>
#include <stdint.h>

/// Writes `n` bytes of `src` to `dst` as the inside of a JSON string and returns how many bytes
/// it wrote: `"` `\` and control bytes escaped (`\n`, `\t`, ..., `\u00XX`), valid UTF-8 kept as it
/// is, each byte of an invalid sequence written as `\ufffd`. `dst` must have room for `6 * n + 16`
/// bytes (whole blocks are stored before they are checked). Blocks are thirty-two bytes (AVX2)
/// where the CPU has AVX2 (checked once, at load), else sixteen (SSE2). While the text is ASCII,
/// a block's flagged bytes are escaped in one pass over its mask (a JSON document carried as a
/// string, dense in quotes, costs half of a scan that starts again after each); from the first
/// block holding a byte from 0x80, a scan that checks each UTF-8 sequence writes the rest.
size_t sluice_json_escape(const uint8_t *src, size_t n, uint8_t *dst);

/// `sluice_json_escape` applied twice, in one pass: the inside of a JSON string that holds the
/// inside of a JSON string (a JSON document carried as a string line, as in Loki's JSON push).
/// A quote becomes `\\\"`, a backslash `\\\\`, a newline `\\n`, another control byte
/// `\\u00XX`, each byte of an invalid UTF-8 sequence `\\ufffd`. `dst` must have room for
/// `7 * n + 16` bytes. Sixteen bytes at a time with SSE2.
size_t sluice_json_escape_twice(const uint8_t *src, size_t n, uint8_t *dst);

/// The length of the valid UTF-8 sequence at `p` (its first byte ≥ 0x80, `avail` bytes readable),
/// or 0 when it is not one: no overlong forms, no surrogates, nothing above U+10FFFF. Inline so
/// the C scans and the Swift JSON scanner share one check without a call per character.
static inline size_t sluice_utf8_sequence_length(const uint8_t *p, size_t avail) {
    uint8_t c0 = p[0];
    if (c0 >= 0xC2 && c0 <= 0xDF) return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c0 >= 0xE0 && c0 <= 0xEF) {
        if (avail < 3) return 0;
        uint8_t c1 = p[1];
        int ok1 = c0 == 0xE0 ? (c1 >= 0xA0 && c1 <= 0xBF) : c0 == 0xED ? (c1 >= 0x80 && c1 <= 0x9F) : (c1 & 0xC0) == 0x80;
        return ok1 && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c0 >= 0xF0 && c0 <= 0xF4) {
        if (avail < 4) return 0;
        uint8_t c1 = p[1];
        int ok1 = c0 == 0xF0 ? (c1 >= 0x90 && c1 <= 0xBF) : c0 == 0xF4 ? (c1 >= 0x80 && c1 <= 0x8F) : (c1 & 0xC0) == 0x80;
        return ok1 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/// How many of the `n` bytes of `src` are valid UTF-8 before the first byte that is not (`n` when
/// all are): no overlong forms, no surrogates, nothing above U+10FFFF, what a protobuf `string`
/// must hold. Sixteen ASCII bytes at a time.
size_t sluice_utf8_valid_length(const uint8_t *src, size_t n);

/// How many bytes of `src` need no JSON escaping before the first that does (or `n`): the run a
/// JSON string scan can step over at once, sixteen at a time with SSE2.
size_t sluice_json_plain_length(const uint8_t *src, size_t n);

/// Where a brace scan is between lines: the object depth, and whether it is inside a string or
/// right after a backslash.
typedef struct {
    long depth;
    int in_quote;
    int escape_next;
} sluice_json_brace_state;

/// Scans `n` bytes for the braces of a JSON object, quotes and backslash escapes respected,
/// carrying `state` over (the incumbent's JsonLogFileReader byte scan). It takes 64-byte blocks
/// (two AVX2 loads where the CPU has AVX2, else four SSE2 ones):
/// without a backslash, the bytes inside strings are the prefix XOR of the quotes and the braces
/// outside them are counted at once; a block with one is walked over its special bytes only.
/// Returns the index of a `}` that takes the depth below zero outside a string (the scan stops
/// there), or `n`.
size_t sluice_json_scan_braces(const uint8_t *p, size_t n, sluice_json_brace_state *state);

/// `sluice_json_scan_braces` without AVX2, as a CPU without it runs it (the tests run both).
size_t sluice_json_scan_braces_sse2(const uint8_t *p, size_t n, sluice_json_brace_state *state);

/// `snprintf(buf, size, "%f", value)`: what C++'s `std::to_string(double)` gives (six
/// decimals), for Swift, which cannot call a variadic C function without boxing its arguments.
int sluice_format_fixed6(char *buf, size_t size, double value);

#endif
