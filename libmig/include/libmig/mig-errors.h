/*
 * mig-errors.h: the one error table of libmig.
 *
 * Every libmig action returns 0 or the negative of one of these codes.
 * Foreign errors (errno, OpenSSL's queue, libyaml's problem, libxc's -1/errno)
 * are converted where they are produced and never travel further.
 */
#ifndef LIBMIG_MIG_ERRORS_H
#define LIBMIG_MIG_ERRORS_H

#define MIG_ERRORS(X)                                                      \
    X(NOMEM, "out of memory")                                             \
    X(INVAL, "invalid argument")                                          \
    X(IO, "input/output error")                                           \
    X(PROTO, "stream protocol violation")                                 \
    X(PEER, "peer closed the connection")                                 \
    X(TIMEOUT, "timed out")                                               \
    X(AUTH, "authentication failed")                                      \
    X(VERSION, "incompatible stream version")                             \
    X(TOOBIG, "length exceeds the allowed maximum")                       \
    X(CRC, "record checksum mismatch")                                    \
    X(NOTSUP, "not supported")                                            \
    X(STATE, "illegal state transition")                                  \
    X(CANCELLED, "cancelled")                                             \
    X(INDOUBT, "outcome in doubt")                                        \
    X(INCOMPAT, "hosts are incompatible")                                 \
    X(BACKEND, "domain backend error")                                    \
    X(NOENT, "no such object")                                            \
    X(EXIST, "already exists")                                            \
    X(BUSY, "resource busy or locked")                                    \
    X(NOSPC, "no space left on target")                                   \
    X(ABORTED, "aborted by peer")                                         \
    X(PARSE, "parse error")                                               \
    X(CONVERGE, "migration did not converge within its time limit")       \
    X(TLS, "TLS error")                                                   \
    X(PERM, "permission denied")

/* Positive values; functions return their negatives (-MIG_EPROTO). */
enum mig_err {
    MIG_OK = 0,
#define MIG__ERR_ENUM(name, text) MIG_E##name,
    MIG_ERRORS(MIG__ERR_ENUM)
#undef MIG__ERR_ENUM
    MIG_ERR_MAX
};

#endif
