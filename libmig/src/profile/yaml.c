/*
 * yaml.c: libyaml events -> a small document tree with positions, for the
 * profile parser and the facts parser (JSON is YAML's flow subset). Every
 * cap on hostile input lives here: total size, NUL bytes, depth, node
 * count, scalar length; aliases and tags are refused (no billion laughs).
 * libyaml's 'problem' text is copied into our error and goes no further.
 * Entry points: mig__yaml_parse(), mig__read_file_capped(), mig__closest().
 */
#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "profile-internal.h"

void mig__perr_set(struct mig__perr *e, const char *name, unsigned line, unsigned col,
                   const char *fmt, ...)
{
    if (!e)
        return;
    /* Line 0: about the file as a whole (cannot open it), no position. */
    int n = line ? snprintf(e->msg, sizeof(e->msg), "%s:%u:%u: ", name ? name : "<input>", line,
                            col)
                 : snprintf(e->msg, sizeof(e->msg), "%s: ", name ? name : "<input>");
    if (n < 0 || (size_t)n >= sizeof(e->msg))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg + n, sizeof(e->msg) - (size_t)n, fmt, ap);
    va_end(ap);
}

struct builder {
    yaml_parser_t parser;
    const char *name;
    struct mig__perr *err;
    size_t nodes;
};

void mig__ynode_free(struct mig__ynode *n)
{
    if (!n)
        return;
    size_t kids = n->type == MIG__Y_MAP ? 2 * n->n : n->n;
    for (size_t i = 0; i < kids; i++)
        mig__ynode_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

const struct mig__ynode *mig__ynode_get(const struct mig__ynode *map, const char *key)
{
    if (!map || map->type != MIG__Y_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->kids[2 * i]->str, key) == 0)
            return map->kids[2 * i + 1];
    return NULL;
}

static unsigned line_of(const yaml_mark_t *m)
{
    return (unsigned)m->line + 1;
}

static unsigned col_of(const yaml_mark_t *m)
{
    return (unsigned)m->column + 1;
}

/* Convert libyaml's error state (the only place it is read). */
static int parser_error(struct builder *b)
{
    if (b->parser.error == YAML_MEMORY_ERROR) {
        mig__perr_set(b->err, b->name, 1, 1, "out of memory");
        return -MIG_ENOMEM;
    }
    const yaml_mark_t *m = &b->parser.problem_mark;
    const char *problem = b->parser.problem ? b->parser.problem : "syntax error";
    if (b->parser.context)
        mig__perr_set(b->err, b->name, line_of(m), col_of(m), "%s %s", problem,
                      b->parser.context);
    else
        mig__perr_set(b->err, b->name, line_of(m), col_of(m), "%s", problem);
    return -MIG_EPARSE;
}

static int next_event(struct builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev))
        return parser_error(b);
    return 0;
}

static int new_node(struct builder *b, enum mig__ynode_type type, const yaml_mark_t *m,
                    struct mig__ynode **n_out)
{
    if (++b->nodes > MIG__PROF_MAX_NODES) {
        mig__perr_set(b->err, b->name, line_of(m), col_of(m),
                      "more than %u nodes in one document", MIG__PROF_MAX_NODES);
        return -MIG_ETOOBIG;
    }
    struct mig__ynode *n = calloc(1, sizeof(*n));
    if (!n)
        return -MIG_ENOMEM;
    n->type = type;
    n->line = line_of(m);
    n->col = col_of(m);
    *n_out = n;
    return 0;
}

/* Append to a growing array of children; 'count' is the number of slots used. */
static int push_kid(struct mig__ynode ***kids, size_t count, size_t *cap, struct mig__ynode *kid)
{
    if (count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct mig__ynode **k = realloc(*kids, ncap * sizeof(*k));
        if (!k)
            return -MIG_ENOMEM;
        *kids = k;
        *cap = ncap;
    }
    (*kids)[count] = kid;
    return 0;
}

static int build(struct builder *b, yaml_event_t *ev, unsigned depth, struct mig__ynode **out);

static int refuse_tag(struct builder *b, const yaml_event_t *ev, const yaml_char_t *tag)
{
    if (!tag)
        return 0;
    mig__perr_set(b->err, b->name, line_of(&ev->start_mark), col_of(&ev->start_mark),
                  "tags (%.40s) are not supported", (const char *)tag);
    return -MIG_EPARSE;
}

static int build_scalar(struct builder *b, yaml_event_t *ev, struct mig__ynode **out)
{
    struct mig__ynode *n = NULL;
    int rc = refuse_tag(b, ev, ev->data.scalar.tag);
    if (rc < 0)
        return rc;
    size_t len = ev->data.scalar.length;
    if (len > MIG__PROF_MAX_SCALAR) {
        mig__perr_set(b->err, b->name, line_of(&ev->start_mark), col_of(&ev->start_mark),
                      "value of %zu bytes is longer than the %u-byte limit", len,
                      MIG__PROF_MAX_SCALAR);
        return -MIG_ETOOBIG;
    }
    if (memchr(ev->data.scalar.value, 0, len)) {
        mig__perr_set(b->err, b->name, line_of(&ev->start_mark), col_of(&ev->start_mark),
                      "value contains a NUL character");
        return -MIG_EPARSE;
    }
    rc = new_node(b, MIG__Y_SCALAR, &ev->start_mark, &n);
    if (rc < 0)
        return rc;
    n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
    n->str = malloc(len + 1);
    if (!n->str) {
        mig__ynode_free(n);
        return -MIG_ENOMEM;
    }
    memcpy(n->str, ev->data.scalar.value, len);
    n->str[len] = '\0';
    *out = n;
    return 0;
}

/* Build a sequence or mapping whose start event is 'ev'. */
static int build_collection(struct builder *b, yaml_event_t *ev, unsigned depth,
                            struct mig__ynode **out)
{
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
    struct mig__ynode *n = NULL, *kid = NULL;
    size_t count = 0, cap = 0;
    yaml_event_t child;
    bool have_child = false;
    int rc;

    rc = refuse_tag(b, ev, is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (rc < 0)
        return rc;
    if (depth >= MIG__PROF_MAX_DEPTH) {
        mig__perr_set(b->err, b->name, line_of(&ev->start_mark), col_of(&ev->start_mark),
                      "nested deeper than %u levels", MIG__PROF_MAX_DEPTH);
        return -MIG_ETOOBIG;
    }
    rc = new_node(b, is_map ? MIG__Y_MAP : MIG__Y_SEQ, &ev->start_mark, &n);
    if (rc < 0)
        return rc;
    for (;;) {
        rc = next_event(b, &child);
        if (rc < 0)
            goto out;
        have_child = true;
        if (child.type == end)
            break;
        rc = build(b, &child, depth + 1, &kid);
        if (rc < 0)
            goto out;
        if (is_map && count % 2 == 0) {
            if (kid->type != MIG__Y_SCALAR) {
                mig__perr_set(b->err, b->name, kid->line, kid->col,
                              "a mapping key must be a plain word, not a %s",
                              kid->type == MIG__Y_MAP ? "mapping" : "list");
                rc = -MIG_EPARSE;
                goto out;
            }
            for (size_t i = 0; i < count; i += 2) {
                if (strcmp(n->kids[i]->str, kid->str) == 0) {
                    mig__perr_set(b->err, b->name, kid->line, kid->col,
                                  "duplicate key '%s' (first at line %u, column %u)", kid->str,
                                  n->kids[i]->line, n->kids[i]->col);
                    rc = -MIG_EPARSE;
                    goto out;
                }
            }
        }
        rc = push_kid(&n->kids, count, &cap, kid);
        if (rc < 0)
            goto out;
        kid = NULL;
        count++;
        n->n = is_map ? count / 2 : count;
        yaml_event_delete(&child);
        have_child = false;
    }
    *out = n;
    n = NULL;
out:
    if (have_child)
        yaml_event_delete(&child);
    mig__ynode_free(kid);
    if (n) {
        /* An odd count (key without value) cannot happen: libyaml pairs them.
         * Free what was built: n->n covers whole pairs only. */
        if (is_map && count % 2)
            mig__ynode_free(n->kids[count - 1]);
        mig__ynode_free(n);
    }
    return rc;
}

static int build(struct builder *b, yaml_event_t *ev, unsigned depth, struct mig__ynode **out)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return build_scalar(b, ev, out);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return build_collection(b, ev, depth, out);
    case YAML_ALIAS_EVENT:
        mig__perr_set(b->err, b->name, line_of(&ev->start_mark), col_of(&ev->start_mark),
                      "aliases (*name) are not supported");
        return -MIG_EPARSE;
    default:
        mig__perr_set(b->err, b->name, line_of(&ev->start_mark), col_of(&ev->start_mark),
                      "unexpected YAML event");
        return -MIG_EPARSE;
    }
}

/* Line and column (1-based) of byte 'off' in buf. */
static void position_of(const char *buf, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

int mig__yaml_parse(const char *buf, size_t len, const char *name, struct mig__ynode **root_out,
                    struct mig__perr *err)
{
    struct builder b = {.name = name, .err = err};
    struct mig__ynode *root = NULL;
    yaml_event_t ev;
    bool have_ev = false, parser_ready = false;
    int rc;

    *root_out = NULL;
    if (len > MIG__PROF_MAX_BYTES) {
        mig__perr_set(err, name, 1, 1, "%zu bytes is more than the %u-byte limit", len,
                      MIG__PROF_MAX_BYTES);
        return -MIG_ETOOBIG;
    }
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        unsigned l, c;
        position_of(buf, (size_t)(nul - buf), &l, &c);
        mig__perr_set(err, name, l, c, "binary data (a NUL byte), not YAML text");
        return -MIG_EPARSE;
    }
    if (!yaml_parser_initialize(&b.parser))
        return -MIG_ENOMEM;
    parser_ready = true;
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)buf, len);

    /* STREAM-START, then DOCUMENT-START or STREAM-END (an empty file). */
    rc = next_event(&b, &ev);
    if (rc < 0)
        goto out;
    yaml_event_delete(&ev);
    rc = next_event(&b, &ev);
    if (rc < 0)
        goto out;
    have_ev = true;
    if (ev.type == YAML_STREAM_END_EVENT) {
        mig__perr_set(err, name, 1, 1, "empty document (no content)");
        rc = -MIG_EPARSE;
        goto out;
    }
    yaml_event_delete(&ev);
    have_ev = false;
    rc = next_event(&b, &ev);
    if (rc < 0)
        goto out;
    have_ev = true;
    rc = build(&b, &ev, 0, &root);
    if (rc < 0)
        goto out;
    if (root->type == MIG__Y_SCALAR && !root->quoted && root->str[0] == '\0') {
        mig__perr_set(err, name, root->line, root->col, "empty document (no content)");
        rc = -MIG_EPARSE;
        goto out;
    }
    yaml_event_delete(&ev);
    have_ev = false;
    rc = next_event(&b, &ev); /* DOCUMENT-END */
    if (rc < 0)
        goto out;
    yaml_event_delete(&ev);
    rc = next_event(&b, &ev);
    if (rc < 0)
        goto out;
    have_ev = true;
    if (ev.type != YAML_STREAM_END_EVENT) {
        mig__perr_set(err, name, line_of(&ev.start_mark), col_of(&ev.start_mark),
                      "more than one document in the file");
        rc = -MIG_EPARSE;
        goto out;
    }
    *root_out = root;
    root = NULL;
    rc = 0;
out:
    if (have_ev)
        yaml_event_delete(&ev);
    if (parser_ready)
        yaml_parser_delete(&b.parser);
    mig__ynode_free(root);
    return rc;
}

int mig__read_file_capped(const char *path, size_t cap, char **buf_out, size_t *len_out,
                          struct mig__perr *err)
{
    int fd = -1;
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    *buf_out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = mig__from_errno(errno);
        mig__perr_set(err, path, 0, 0, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            mig__perr_set(err, path, 0, 0, "is a directory");
            rc = -MIG_EINVAL;
            goto out;
        }
        /* Refuse on the size alone: a 100 MB file is never read. */
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > cap) {
            mig__perr_set(err, path, 1, 1, "file is %llu bytes, more than the %zu-byte limit",
                          (unsigned long long)st.st_size, cap);
            rc = -MIG_ETOOBIG;
            goto out;
        }
    }
    buf = malloc(cap + 2);
    if (!buf) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    /* Read up to cap + 1: one byte more than allowed proves the file too big
     * even when its size was not known in advance (a pipe, /proc). */
    while (len < cap + 1) {
        ssize_t r = read(fd, buf + len, cap + 1 - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = mig__from_errno(errno);
            mig__perr_set(err, path, 0, 0, "read error: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > cap) {
        mig__perr_set(err, path, 1, 1, "file is more than the %zu-byte limit", cap);
        rc = -MIG_ETOOBIG;
        goto out;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}
