/*
 * yaml-util.c: libyaml document loading with positions, error messages in
 * "FILE:LINE:COLUMN: message" form and string arrays. libyaml's problem strings are converted here and travel no
 * further than a message.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmig/mig-errors.h>

#include "planner-internal.h"

int mig__yaml_load(const char *text, size_t len, const char *name, yaml_document_t *doc, char *err,
                   size_t errlen)
{
    yaml_parser_t p;
    int rc = 0;

    if (!yaml_parser_initialize(&p))
        return -MIG_ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, doc)) {
        yaml_mark_t m = p.problem_mark;
        snprintf(err, errlen, "%s:%zu:%zu: %s%s%s", name, m.line + 1, m.column + 1,
                 p.problem ? p.problem : "syntax error", p.context ? " " : "",
                 p.context ? p.context : "");
        rc = -MIG_EPARSE;
    }
    yaml_parser_delete(&p);
    return rc;
}

const char *mig__yaml_scalar(yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)n->data.scalar.value;
}

int mig__yaml_err(char *err, size_t errlen, const char *name, const yaml_node_t *n, const char *fmt,
                  ...)
{
    va_list ap;
    int k = snprintf(err, errlen, "%s:%zu:%zu: ", name, n ? n->start_mark.line + 1 : 1,
                     n ? n->start_mark.column + 1 : 1);
    if (k < 0 || (size_t)k >= errlen)
        return -MIG_EPARSE;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return -MIG_EPARSE;
}

void mig__strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t mig__strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

bool mig__plan_strv_has(char *const *v, const char *s)
{
    for (; v && *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}
