/*
 * transport.c: the static class table, chosen by URI prefix (tcp:, tls:,
 * ssh:, unix:, fd:), and the generic connection destructor.
 * Entry points: mig__tr_lookup, mig__tr_class_at, mig__conn_free.
 */
#include <config.h>

#include <string.h>

#include "transport-provider.h"

extern const struct mig__tr_class mig__tr_fd;

static const struct mig__tr_class *const classes[] = {
    &mig__tr_tcp, &mig__tr_tls, &mig__tr_ssh, &mig__tr_unix, &mig__tr_fd,
};

int mig__tr_lookup(const char *uri, const struct mig__tr_class **cls_out, const char **arg_out)
{
    const char *colon = uri ? strchr(uri, ':') : NULL;
    if (!colon)
        return -MIG_EINVAL;
    size_t n = (size_t)(colon - uri);
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (strlen(classes[i]->prefix) == n && !strncmp(uri, classes[i]->prefix, n)) {
            *cls_out = classes[i];
            *arg_out = colon + 1;
            return 0;
        }
    }
    return -MIG_ENOTSUP;
}

const struct mig__tr_class *mig__tr_class_at(unsigned i)
{
    return i < sizeof(classes) / sizeof(classes[0]) ? classes[i] : NULL;
}

void mig__conn_free(struct mig__conn *c)
{
    if (c)
        c->ops->close(c);
}
