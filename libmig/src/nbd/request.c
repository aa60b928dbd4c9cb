/*
 * request.c: the NBD transmission request parser: decode the 28 wire bytes
 * (mig__nbd_req_decode) and decide whether the request may run on this
 * connection, or which protocol error answers it (mig__nbd_req_check).
 * Pure functions: the server, its unit tests and the fuzz target share them.
 */
#include <config.h>

#include <string.h>

#include "nbd-internal.h"

int mig__nbd_req_decode(const uint8_t wire[MIG__NBD_REQ_SIZE], struct mig__nbd_req *r)
{
    if (mig__nbd_get32(wire) != MIG__NBD_REQUEST_MAGIC)
        return -MIG_EPROTO;
    r->flags = mig__nbd_get16(wire + 4);
    r->type = mig__nbd_get16(wire + 6);
    r->cookie = mig__nbd_get64(wire + 8);
    r->offset = mig__nbd_get64(wire + 16);
    r->length = mig__nbd_get32(wire + 24);
    return 0;
}

/* Flags a command accepts on a connection with these transmission flags.
 * FUA is valid on every command once SEND_FUA is advertised (the protocol
 * says so: clients are known to set it on reads and flushes). */
static uint16_t allowed_flags(uint16_t type, uint16_t tflags)
{
    uint16_t fua = (tflags & MIG__NBD_TFLAG_SEND_FUA) ? MIG__NBD_CMD_FLAG_FUA : 0;
    switch (type) {
    case MIG__NBD_CMD_READ:
        return (uint16_t)(fua | ((tflags & MIG__NBD_TFLAG_SEND_DF) ? MIG__NBD_CMD_FLAG_DF : 0));
    case MIG__NBD_CMD_WRITE:
    case MIG__NBD_CMD_FLUSH:
    case MIG__NBD_CMD_TRIM:
        return fua;
    case MIG__NBD_CMD_WRITE_ZEROES:
        return (uint16_t)(fua | MIG__NBD_CMD_FLAG_NO_HOLE |
                          ((tflags & MIG__NBD_TFLAG_SEND_FAST_ZERO) ? MIG__NBD_CMD_FLAG_FAST_ZERO
                                                                    : 0));
    default:
        return 0;
    }
}

/* Is the command one this connection advertised? */
static bool command_known(uint16_t type, uint16_t tflags)
{
    switch (type) {
    case MIG__NBD_CMD_READ:
    case MIG__NBD_CMD_WRITE:
    case MIG__NBD_CMD_DISC:
        return true;
    case MIG__NBD_CMD_FLUSH:
        return tflags & MIG__NBD_TFLAG_SEND_FLUSH;
    case MIG__NBD_CMD_TRIM:
        return tflags & MIG__NBD_TFLAG_SEND_TRIM;
    case MIG__NBD_CMD_WRITE_ZEROES:
        return tflags & MIG__NBD_TFLAG_SEND_WRITE_ZEROES;
    default:
        return false; /* CACHE, BLOCK_STATUS (needs structured replies), unknown */
    }
}

uint32_t mig__nbd_req_check(const struct mig__nbd_req *r, const struct mig__nbd_limits *lim,
                            uint32_t *drain_out)
{
    bool writes;
    /* The payload is on the wire whatever we think of the request. */
    *drain_out = r->type == MIG__NBD_CMD_WRITE ? r->length : 0;
    if (r->type == MIG__NBD_CMD_DISC)
        return 0;
    if (!command_known(r->type, lim->tflags))
        return MIG__NBD_EINVAL;
    if (r->flags & ~allowed_flags(r->type, lim->tflags))
        return MIG__NBD_EINVAL;
    if (r->type == MIG__NBD_CMD_FLUSH)
        return (r->offset || r->length) ? MIG__NBD_EINVAL : 0;
    if ((r->type == MIG__NBD_CMD_READ || r->type == MIG__NBD_CMD_WRITE) &&
        r->length > lim->max_payload)
        return MIG__NBD_EOVERFLOW;
    writes = r->type != MIG__NBD_CMD_READ;
    if (writes && (lim->tflags & MIG__NBD_TFLAG_READ_ONLY))
        return MIG__NBD_EPERM;
    /* offset + length <= size, written so that it cannot wrap */
    if (r->offset > lim->size || r->length > lim->size - r->offset)
        return (r->type == MIG__NBD_CMD_WRITE || r->type == MIG__NBD_CMD_WRITE_ZEROES)
                   ? MIG__NBD_ENOSPC
                   : MIG__NBD_EINVAL;
    return 0;
}

uint32_t mig__nbd_err_to_wire(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case -MIG_ENOSPC:
        return MIG__NBD_ENOSPC;
    case -MIG_EPERM:
        return MIG__NBD_EPERM;
    case -MIG_EINVAL:
        return MIG__NBD_EINVAL;
    case -MIG_ENOMEM:
        return MIG__NBD_ENOMEM;
    case -MIG_ENOTSUP:
        return MIG__NBD_ENOTSUP;
    case -MIG_ECANCELLED:
        return MIG__NBD_ESHUTDOWN;
    default:
        return MIG__NBD_EIO;
    }
}
