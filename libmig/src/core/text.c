/*
 * text.c: the "did you mean" suggestion shared by every parser of user input
 * (profiles, policies, options): a bounded edit distance and the closest
 * known word within it; and the hex digit every parser of hex text needs.
 */
#include <config.h>

#include <string.h>

#include "mig-internal.h"

unsigned mig__edit_distance(const char *a, const char *b, unsigned max)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return max + 1;
    unsigned row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0], best = row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned v = diag + cost;
            if (up + 1 < v)
                v = up + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best)
                best = v;
        }
        if (best > max)
            return max + 1;
    }
    return row[lb] > max ? max + 1 : row[lb];
}

const char *mig__closest(const char *s, const char *const *cands)
{
    size_t ls = strlen(s);
    /* Short words tolerate one edit, longer ones up to three. */
    unsigned max = ls <= 3 ? 1 : ls <= 6 ? 2 : 3;
    const char *best = NULL;
    unsigned best_d = max + 1;
    for (size_t i = 0; cands[i]; i++) {
        unsigned d = mig__edit_distance(s, cands[i], max);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}

int mig__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
