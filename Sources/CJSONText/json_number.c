#include "sluice_json_text.h"

#include <stdio.h>

int sluice_format_fixed6(char *buf, size_t size, double value) {
    return snprintf(buf, size, "%f", value);
}
