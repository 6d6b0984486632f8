// zstd from Debian's libzstd-dev: request bodies with Content-Encoding: zstd.
#include <zstd.h>
