/*
 * errors.c: text and names for the libmig error table (mig-errors.h), and
 * the one place errno values become libmig codes.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "mig-internal.h"

static const char *const err_text[MIG_ERR_MAX] = {
    [MIG_OK] = "success",
#define X(name, text) [MIG_E##name] = text,
    MIG_ERRORS(X)
#undef X
};

static const char *const err_name[MIG_ERR_MAX] = {
    [MIG_OK] = "OK",
#define X(name, text) [MIG_E##name] = "E" #name,
    MIG_ERRORS(X)
#undef X
};

const char *mig_strerror(int rc)
{
    int code = rc < 0 ? -rc : rc;
    if (code >= MIG_ERR_MAX)
        return "unknown error";
    return err_text[code];
}

const char *mig_errname(int rc)
{
    int code = rc < 0 ? -rc : rc;
    if (code >= MIG_ERR_MAX)
        return "EUNKNOWN";
    return err_name[code];
}

int mig__from_errno(int err)
{
    switch (err) {
    case 0:
        return 0;
    case ENOMEM:
        return -MIG_ENOMEM;
    case EINVAL:
        return -MIG_EINVAL;
    case EPIPE:
    case ECONNRESET:
    case ECONNREFUSED:
    case ENOTCONN:
        return -MIG_EPEER;
    case ETIMEDOUT:
    case EAGAIN:
        return -MIG_ETIMEOUT;
    case ENOENT:
    case ESRCH:
        return -MIG_ENOENT;
    case EEXIST:
        return -MIG_EEXIST;
    case EBUSY:
        return -MIG_EBUSY;
    case ENOSPC:
    case EDQUOT:
        return -MIG_ENOSPC;
    case EACCES:
    case EPERM:
        return -MIG_EPERM;
    case EOPNOTSUPP:
    case ENOSYS:
        return -MIG_ENOTSUP;
    case EINTR:
        return -MIG_ECANCELLED;
    default:
        return -MIG_EIO;
    }
}
