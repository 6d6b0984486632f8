#include "json_simd.h"

int sluice_cpu_avx2;

#if defined(__x86_64__)
__attribute__((constructor)) static void detect_cpu_features(void) {
    __builtin_cpu_init();
    sluice_cpu_avx2 = __builtin_cpu_supports("avx2");
}
#endif
