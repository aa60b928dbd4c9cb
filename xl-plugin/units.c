/*
 * units.c: sizes, rates and counts from the command line (see units.h).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "units.h"

struct suffix {
    const char *name;
    uint64_t mult;
    bool bits;
};

static const struct suffix suffixes[] = {
    {"", 1, false},
    {"B", 1, false},
    {"K", 1ull << 10, false},  {"KiB", 1ull << 10, false}, {"KB", 1000ull, false},
    {"M", 1ull << 20, false},  {"MiB", 1ull << 20, false}, {"MB", 1000000ull, false},
    {"G", 1ull << 30, false},  {"GiB", 1ull << 30, false}, {"GB", 1000000000ull, false},
    {"T", 1ull << 40, false},  {"TiB", 1ull << 40, false}, {"TB", 1000000000000ull, false},
    {"bit", 1, true},          {"Kbit", 1000ull, true},    {"Mbit", 1000000ull, true},
    {"Gbit", 1000000000ull, true},
};

static int parse(const char *s, bool allow_bits, bool allow_per_s, uint64_t *out)
{
    char *end;
    char unit[16];
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    size_t ulen = strlen(end);
    if (ulen >= sizeof(unit))
        return -1;
    memcpy(unit, end, ulen + 1);
    if (allow_per_s && ulen >= 2 && strcmp(unit + ulen - 2, "/s") == 0)
        unit[ulen - 2] = 0;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        const struct suffix *x = &suffixes[i];
        if (strcmp(unit, x->name) != 0)
            continue;
        if (x->bits && !allow_bits)
            return -1;
        double bytes = v * (double)x->mult / (x->bits ? 8.0 : 1.0);
        if (bytes > 1.8e19)
            return -1;
        *out = (uint64_t)(bytes + 0.5);
        return 0;
    }
    return -1;
}

int units_parse_size(const char *s, uint64_t *bytes_out)
{
    return parse(s, false, false, bytes_out);
}

int units_parse_rate(const char *s, uint64_t *bytes_per_s_out)
{
    return parse(s, true, true, bytes_per_s_out);
}

int units_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

const char *units_fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    unsigned i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, names[i]);
    return buf;
}
