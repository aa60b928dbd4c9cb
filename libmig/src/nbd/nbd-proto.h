/*
 * nbd-proto.h: NBD protocol constants (values from the NBD protocol
 * specification, doc/proto.md of the NBD project; every field is big-endian
 * on the wire). Only what this server speaks or must recognise to refuse.
 */
#ifndef MIG_NBD_PROTO_H
#define MIG_NBD_PROTO_H

/* Handshake */
#define MIG__NBD_MAGIC 0x4e42444d41474943ull   /* "NBDMAGIC" */
#define MIG__NBD_IHAVEOPT 0x49484156454f5054ull /* "IHAVEOPT": newstyle, and each option */
#define MIG__NBD_REP_MAGIC 0x0003e889045565a9ull /* option replies */

#define MIG__NBD_FLAG_FIXED_NEWSTYLE 0x0001u /* handshake flags (server) */
#define MIG__NBD_FLAG_NO_ZEROES 0x0002u
#define MIG__NBD_FLAG_C_FIXED_NEWSTYLE 0x0001u /* client flags */
#define MIG__NBD_FLAG_C_NO_ZEROES 0x0002u

#define MIG__NBD_OPT_EXPORT_NAME 1u
#define MIG__NBD_OPT_ABORT 2u
#define MIG__NBD_OPT_LIST 3u
#define MIG__NBD_OPT_STARTTLS 5u
#define MIG__NBD_OPT_INFO 6u
#define MIG__NBD_OPT_GO 7u
#define MIG__NBD_OPT_STRUCTURED_REPLY 8u
#define MIG__NBD_OPT_LIST_META_CONTEXT 9u
#define MIG__NBD_OPT_SET_META_CONTEXT 10u
#define MIG__NBD_OPT_EXTENDED_HEADERS 11u

#define MIG__NBD_REP_ACK 1u
#define MIG__NBD_REP_SERVER 2u
#define MIG__NBD_REP_INFO 3u
#define MIG__NBD_REP_ERR_UNSUP 0x80000001u
#define MIG__NBD_REP_ERR_POLICY 0x80000002u
#define MIG__NBD_REP_ERR_INVALID 0x80000003u
#define MIG__NBD_REP_ERR_UNKNOWN 0x80000006u
#define MIG__NBD_REP_ERR_SHUTDOWN 0x80000007u
#define MIG__NBD_REP_ERR_TOO_BIG 0x80000009u

#define MIG__NBD_INFO_EXPORT 0u
#define MIG__NBD_INFO_NAME 1u
#define MIG__NBD_INFO_DESCRIPTION 2u
#define MIG__NBD_INFO_BLOCK_SIZE 3u

/* Transmission flags */
#define MIG__NBD_TFLAG_HAS_FLAGS 0x0001u
#define MIG__NBD_TFLAG_READ_ONLY 0x0002u
#define MIG__NBD_TFLAG_SEND_FLUSH 0x0004u
#define MIG__NBD_TFLAG_SEND_FUA 0x0008u
#define MIG__NBD_TFLAG_ROTATIONAL 0x0010u
#define MIG__NBD_TFLAG_SEND_TRIM 0x0020u
#define MIG__NBD_TFLAG_SEND_WRITE_ZEROES 0x0040u
#define MIG__NBD_TFLAG_SEND_DF 0x0080u
#define MIG__NBD_TFLAG_CAN_MULTI_CONN 0x0100u
#define MIG__NBD_TFLAG_SEND_CACHE 0x0400u
#define MIG__NBD_TFLAG_SEND_FAST_ZERO 0x0800u

/* Transmission */
#define MIG__NBD_REQUEST_MAGIC 0x25609513u
#define MIG__NBD_SIMPLE_REPLY_MAGIC 0x67446698u

#define MIG__NBD_CMD_READ 0u
#define MIG__NBD_CMD_WRITE 1u
#define MIG__NBD_CMD_DISC 2u
#define MIG__NBD_CMD_FLUSH 3u
#define MIG__NBD_CMD_TRIM 4u
#define MIG__NBD_CMD_CACHE 5u
#define MIG__NBD_CMD_WRITE_ZEROES 6u
#define MIG__NBD_CMD_BLOCK_STATUS 7u

#define MIG__NBD_CMD_FLAG_FUA 0x0001u
#define MIG__NBD_CMD_FLAG_NO_HOLE 0x0002u
#define MIG__NBD_CMD_FLAG_DF 0x0004u
#define MIG__NBD_CMD_FLAG_REQ_ONE 0x0008u
#define MIG__NBD_CMD_FLAG_FAST_ZERO 0x0010u

/* Error values of replies (the protocol's, not the host's errno) */
#define MIG__NBD_EPERM 1u
#define MIG__NBD_EIO 5u
#define MIG__NBD_ENOMEM 12u
#define MIG__NBD_EINVAL 22u
#define MIG__NBD_ENOSPC 28u
#define MIG__NBD_EOVERFLOW 75u
#define MIG__NBD_ENOTSUP 95u
#define MIG__NBD_ESHUTDOWN 108u

/* Strings (export names, descriptions) are at most this long. */
#define MIG__NBD_MAX_STRING 4096u
/* Option data we read at all; larger options are refused (drop). */
#define MIG__NBD_MAX_OPTION 65536u

#endif
