/*
 * qmp.h: a small client for QEMU's machine protocol (QMP) over a unix
 * socket, for the device model of an HVM domain (libxl's per-domain socket
 * /var/run/xen/qmp-libxl-DOMID) and its tests. Synchronous: one command at a
 * time, every read bounded by the connection's timeout, asynchronous events
 * skipped, a reply matched to its command by "id". The JSON reader is ours
 * (the project carries no JSON library): it takes only what RFC 8259 allows,
 * under caps on size, depth and node count, so a hostile or broken peer
 * gets a clear error, never an unbounded allocation.
 *
 * Entry points: mig__qmp_connect(), mig__qmp_execute(), mig__qmp_close();
 * the argument builder mig__qmp_args_*; the JSON tree mig__qmp_json_*.
 */
#ifndef MIG_QMP_H
#define MIG_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mig-internal.h"

#define MIG_QMP_MAX_MSG      (1u << 20) /* bytes: one message from QEMU */
#define MIG_QMP_MAX_DEPTH    32u        /* nesting of arrays/objects */
#define MIG_QMP_MAX_NODES    65536u     /* values in one message */
#define MIG_QMP_DEFAULT_MS   10000u     /* ms: libxl waits 10 s for the log-dirty switch */
#define MIG_QMP_MAX_ARGS     4096u      /* bytes: a command's arguments, as JSON */

/* ---- JSON ------------------------------------------------------------- */

enum mig__qmp_jtype {
    MIG_QMP_J_NULL,
    MIG_QMP_J_BOOL,
    MIG_QMP_J_NUM,
    MIG_QMP_J_STR,
    MIG_QMP_J_ARR,
    MIG_QMP_J_OBJ,
};

/* One parsed value; a tree owned by its root. */
struct mig__qmp_json {
    enum mig__qmp_jtype type;
    bool b;                       /* BOOL */
    char *s;                      /* STR: UTF-8, no NUL inside; NUM: the literal as written */
    size_t n;                     /* ARR, OBJ: number of items */
    char **keys;                  /* OBJ: n keys (UTF-8) */
    struct mig__qmp_json **items; /* ARR, OBJ: n values */
};

/* Parse exactly one JSON value (surrounding whitespace allowed) of 'len'
 * bytes. -MIG_EPARSE with a reason in err[] (may be NULL) on anything RFC
 * 8259 does not allow (also invalid UTF-8, lone surrogates, "\u0000"),
 * -MIG_ETOOBIG above the caps. Caller frees *out with mig__qmp_json_free. */
MIG_HIDDEN int mig__qmp_json_parse(const char *text, size_t len, struct mig__qmp_json **out,
                                   char *err, size_t err_len);
MIG_HIDDEN void mig__qmp_json_free(struct mig__qmp_json *j); /* NULL-safe */
/* Member 'key' of an object, NULL if absent or j is not an object. Borrowed. */
MIG_HIDDEN const struct mig__qmp_json *mig__qmp_json_get(const struct mig__qmp_json *j,
                                                         const char *key);
/* The string, NULL if j is not a string. Borrowed. */
MIG_HIDDEN const char *mig__qmp_json_str(const struct mig__qmp_json *j);
/* An integer number within int64; -MIG_EINVAL otherwise. */
MIG_HIDDEN int mig__qmp_json_int(const struct mig__qmp_json *j, int64_t *out);

/* ---- command arguments ------------------------------------------------ */

/* Builds the "arguments" object; strings are escaped here, so a file name
 * can never change the command. An overflow is sticky and fails execute. */
struct mig__qmp_args {
    char buf[MIG_QMP_MAX_ARGS];
    size_t len;
    bool overflow;
};

MIG_HIDDEN void mig__qmp_args_init(struct mig__qmp_args *a);
MIG_HIDDEN void mig__qmp_args_str(struct mig__qmp_args *a, const char *key, const char *val);
MIG_HIDDEN void mig__qmp_args_bool(struct mig__qmp_args *a, const char *key, bool val);
MIG_HIDDEN void mig__qmp_args_int(struct mig__qmp_args *a, const char *key, int64_t val);
/* A nested object: members added between begin and end go inside it
 * ("server": {"type": "unix", ...} of blockdev-add). */
MIG_HIDDEN void mig__qmp_args_obj_begin(struct mig__qmp_args *a, const char *key);
MIG_HIDDEN void mig__qmp_args_obj_end(struct mig__qmp_args *a);

/* ---- the connection --------------------------------------------------- */

struct mig__qmp;

/* Connect to the unix socket 'path', read the greeting and negotiate
 * capabilities (qmp_capabilities, no optional ones). Every later read waits
 * at most timeout_ms (0: MIG_QMP_DEFAULT_MS) for the whole reply. Caller
 * frees with mig__qmp_close. Errors: -MIG_ENOENT (no socket),
 * -MIG_ETIMEOUT (QEMU does not answer), -MIG_EPROTO (not QMP). */
MIG_HIDDEN int mig__qmp_connect(struct mig_ctx *ctx, const char *path, unsigned timeout_ms,
                                struct mig__qmp **q_out);
/* Run one command. args may be NULL. On success *ret_out (may be NULL: not
 * wanted) is the "return" value, caller frees. A QMP error reply returns
 * -MIG_EBACKEND and keeps its class and text for mig__qmp_last_error. A
 * timeout or protocol error breaks the connection: later calls fail with
 * the same code at once (a late reply must not answer the next command). */
MIG_HIDDEN int mig__qmp_execute(struct mig__qmp *q, const char *cmd,
                                const struct mig__qmp_args *args, struct mig__qmp_json **ret_out);
/* The same, passing 'fd' to QEMU with the command (SCM_RIGHTS), as the
 * "add-fd" and "getfd" commands expect. The fd stays ours. */
MIG_HIDDEN int mig__qmp_execute_fd(struct mig__qmp *q, const char *cmd,
                                   const struct mig__qmp_args *args, int fd,
                                   struct mig__qmp_json **ret_out);
/* The last QMP error reply: class ("CommandNotFound", "GenericError", ...)
 * and description. Borrowed, valid until the next execute; "" if none. */
MIG_HIDDEN const char *mig__qmp_last_error_class(const struct mig__qmp *q);
MIG_HIDDEN const char *mig__qmp_last_error_desc(const struct mig__qmp *q);
/* QEMU's version from the greeting (major << 16 | minor << 8 | micro). */
MIG_HIDDEN uint32_t mig__qmp_version(const struct mig__qmp *q);
/* Asynchronous events skipped so far, and the last one's name (borrowed). */
MIG_HIDDEN unsigned mig__qmp_events(const struct mig__qmp *q);
MIG_HIDDEN const char *mig__qmp_last_event(const struct mig__qmp *q);
MIG_HIDDEN void mig__qmp_close(struct mig__qmp *q); /* NULL-safe */

#endif
