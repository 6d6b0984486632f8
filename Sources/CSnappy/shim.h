// Snappy's C API from Debian's libsnappy-dev: the block format Loki's push API and
// Content-Encoding: snappy bodies use.
#include <snappy-c.h>
