#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Continues the CRC-32C (Castagnoli) `crc` (0 to start) over `length` bytes at `data`: the
/// SSE 4.2 `crc32` instruction where the CPU has it (checked once), 8 bytes at a time; otherwise
/// a slicing-by-8 table.
uint32_t sluice_crc32c_update(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware instruction is used.
int sluice_crc32c_hardware(void);

#endif
