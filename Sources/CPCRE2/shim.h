// PCRE2 from Debian's libpcre2-dev, 8-bit code units (bytes). Swift cannot import the generic
// macro names, so Swift code calls the `_8` functions directly.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// PCRE2_UNSET is a cast expression, which Swift does not import.
static inline PCRE2_SIZE cpcre2_unset(void) { return PCRE2_UNSET; }
