// CRC-32C for the disk buffer's frames. The Swift standard library has no way to reach the
// SSE 4.2 `crc32` instruction, and no listed package computes CRC-32C, so this small C target
// does: hardware when the CPU has it, a slicing-by-8 table otherwise.
#include "sluice_crc32c.h"

#include <string.h>

static uint32_t table[8][256];
static int ready;
static int hardware;

static void init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    hardware = __builtin_cpu_supports("sse4.2");
#endif
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
}

static uint32_t software(uint32_t c, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^ table[4][(w >> 24) & 0xFF] ^
            table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^ table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t sse42(uint32_t c, const uint8_t *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c64;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t sluice_crc32c_update(uint32_t crc, const void *data, size_t length) {
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) init();
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (hardware) return ~sse42(c, (const uint8_t *)data, length);
#endif
    return ~software(c, (const uint8_t *)data, length);
}

int sluice_crc32c_hardware(void) {
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) init();
    return hardware;
}
