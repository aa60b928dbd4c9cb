/*
 * fd-conn.h: the fd connection's layout, shared by fd.c (owner), tls.c
 * (which reuses its wake pipe and deadlines) and ssh.c (child process).
 */
#ifndef MIG_FD_CONN_H
#define MIG_FD_CONN_H

#include <sys/types.h>

#include "transport-provider.h"

struct fd_conn {
    struct mig__conn base;
    int rfd, wfd;               /* owned; equal for sockets */
    int wake[2];                /* owned: shutdown() writes, waits poll it */
    bool is_sock;
    volatile bool down;         /* shutdown() called */
    pid_t child;                /* ssh: reaped on close; 0 */
    int rcv_tmo, snd_tmo;       /* sockets: SO_RCVTIMEO / SO_SNDTIMEO now set (ms) */
    int rcv_lowat;              /* sockets: SO_RCVLOWAT now set (bytes; 1 at start) */
};

int mig__fd_conn_init(struct fd_conn *c, struct mig_ctx *ctx, int rfd, int wfd,
                      enum mig__auth auth, const char *peer);
/* Wait for 'events' on the read fd (POLLIN) or write fd (POLLOUT), or a
 * shutdown (-MIG_ECANCELLED), at most timeout_ms (-MIG_ETIMEOUT). */
int mig__fd_conn_wait(struct fd_conn *c, short events, int timeout_ms);
void mig__conn_fd_set_child(struct mig__conn *c, pid_t pid);
ssize_t mig__tr_writev_nosig(int fd, const struct iovec *iov, int n);

#endif
