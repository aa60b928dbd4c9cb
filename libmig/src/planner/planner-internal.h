/*
 * planner-internal.h: what the planner's files share: YAML document helpers
 * (policy files and facts JSON both go through libyaml), the "did you mean"
 * suggestion, and small string-array helpers.
 */
#ifndef MIG_PLANNER_INTERNAL_H
#define MIG_PLANNER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "mig-internal.h"

/* Load the first document of text into doc (caller deletes it). On error
 * -MIG_EPARSE with "NAME:LINE:COLUMN: problem" in err. An empty text gives
 * a document without a root node. */
int mig__yaml_load(const char *text, size_t len, const char *name, yaml_document_t *doc, char *err,
                   size_t errlen);

/* Scalar text of node, or NULL if it is not a scalar (borrowed). */
const char *mig__yaml_scalar(yaml_node_t *n);

/* "NAME:LINE:COLUMN: " + message into err; returns -MIG_EPARSE. */
int mig__yaml_err(char *err, size_t errlen, const char *name, const yaml_node_t *n, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* The closest of the NULL-terminated 'known' to 'word' (edit distance at
 * most 2 or a third of the word), or NULL. */

/* NULL-terminated string arrays. */
void mig__strv_free(char **v);
size_t mig__strv_len(char *const *v);
bool mig__plan_strv_has(char *const *v, const char *s);

#endif
