/*
 * units.h: parsing of the command line's sizes, rates and durations, and
 * the formatting of byte counts for humans.
 *
 * Sizes: a number with an optional suffix. K, M, G, T and KiB, MiB, GiB, TiB
 * are powers of 1024 (as xl's memory sizes); KB, MB, GB, TB powers of 1000.
 * Rates: a size per second, with an optional "/s"; bit rates Kbit, Mbit,
 * Gbit (powers of 1000 bits). A bare number of a rate is bytes per second.
 */
#ifndef XLML_UNITS_H
#define XLML_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0, or -1 with nothing stored when 's' is not a size. */
int units_parse_size(const char *s, uint64_t *bytes_out);
/* 0, or -1 when 's' is not a rate; bytes per second. */
int units_parse_rate(const char *s, uint64_t *bytes_per_s_out);
/* A whole number in [min, max]. */
int units_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* "1.5 GiB", "512.0 MiB", "12 B" into buf. */
const char *units_fmt_bytes(uint64_t bytes, char *buf, size_t len);

#endif
