#ifndef SLUICE_JSON_TEXT_H
#define SLUICE_JSON_TEXT_H

#include <stddef.h>
#include <stdint.h>

/// Copies bytes of `src` to `dst` while they need no JSON escaping (ASCII 0x20 to 0x7F other
/// than `"` and `\`), sixteen at a time with SSE2 where the CPU has it; returns how many were
/// copied, which is the index of the first byte that needs work, or `n`. Whole blocks are stored
/// before they are checked: `dst` must have room for `n` bytes (a block is only read and
/// stored when all sixteen of its bytes are within `n`).
size_t sluice_json_copy_plain(const uint8_t *src, size_t n, uint8_t *dst);

/// `snprintf(buf, size, "%f", value)`: what C++'s `std::to_string(double)` gives (six
/// decimals), for Swift, which cannot call a variadic C function without boxing its arguments.
int sluice_format_fixed6(char *buf, size_t size, double value);

#endif
