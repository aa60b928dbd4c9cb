/*
 * xen-hvm.c: what the xen: backend does for HVM guests beyond PVH: their
 * device model (QEMU, reached over libxl's per-domain QMP socket with
 * qmp.c) and the libxl emulator records (docs/xen-stream.md, "HVM").
 *
 * Entry points (xen-internal.h): mig__xen_hvm_check() refuses what cannot
 * move (passthrough, nested HVM, stub domains, qemu-traditional, and any
 * HVM setting that makes a host read or write a file the peer chose);
 * mig__xen_hvm_dm_logdirty() switches QEMU's own dirty log;
 * mig__xen_hvm_save_dm() stops QEMU and saves its device state into a file
 * this process owns; mig__xen_hvm_xenstore_data() packs QEMU's physmap keys
 * as libxl's writer does.
 *
 * libxl's QMP socket is a single-client chardev: while we hold it, libxl's
 * own commands (its suspend saves the device model too, its resume sends
 * "cont") would wait. So every operation here connects, runs, and closes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xenstore.h>

#define MIG_LOG_MODULE "hv-xen"
#include "qmp.h"
#include "xen-internal.h"
#include "xen-stream.h"

#define QMP_DIR_DEFAULT "/var/run/xen"
#define FDSET_ID        4242 /* ours; removed right after the save */

static bool set(const char *s)
{
    return s && *s;
}

static bool is_true(libxl_defbool d)
{
    return !libxl_defbool_is_default(d) && libxl_defbool_val(d);
}

static int refuse(struct mig_ctx *ctx, char *why, size_t why_len, const char *what)
{
    snprintf(why, why_len, "%s", what);
    MIG_LOG(ctx, ERROR, "HVM guest refused: %s", what);
    return -MIG_ENOTSUP;
}

/* A serial/parallel/monitor backend QEMU may open: only a pty or nothing
 * (a "file:" or "unix:" backend is a host path chosen by the peer). */
static bool chardev_ok(const char *s)
{
    return !set(s) || !strcmp(s, "pty") || !strcmp(s, "none") || !strcmp(s, "null");
}

int mig__xen_hvm_check(struct mig_ctx *ctx, const libxl_domain_config *cfg, char *why,
                       size_t why_len)
{
    const libxl_domain_build_info *b = &cfg->b_info;
    if (cfg->num_pcidevs || cfg->num_rdms || cfg->num_dtdevs || b->num_iomem || b->num_ioports ||
        b->num_irqs ||
        (cfg->c_info.passthrough != LIBXL_PASSTHROUGH_DEFAULT &&
         cfg->c_info.passthrough != LIBXL_PASSTHROUGH_DISABLED))
        return refuse(ctx, why, why_len,
                      "PCI/IO passthrough (pci=, iomem=, ioports=, irqs=): a device "
                      "assigned to the guest cannot follow it to another host");
    if (is_true(b->nested_hvm) || is_true(b->u.hvm.nested_hvm))
        return refuse(ctx, why, why_len,
                      "nested HVM: the state of the guest's own guests is not saved by Xen");
    if (b->device_model_version != LIBXL_DEVICE_MODEL_VERSION_QEMU_XEN &&
        b->device_model_version != LIBXL_DEVICE_MODEL_VERSION_UNKNOWN)
        return refuse(ctx, why, why_len,
                      "only the upstream device model (qemu-xen) is supported");
    if (is_true(b->device_model_stubdomain))
        return refuse(ctx, why, why_len, "a stub-domain device model is not supported");
    if (b->u.hvm.vga.kind == LIBXL_VGA_INTERFACE_TYPE_QXL || is_true(b->u.hvm.spice.enable))
        return refuse(ctx, why, why_len, "QXL/SPICE display: only stdvga, cirrus or none");
    if (set(b->u.hvm.firmware) || set(b->u.hvm.system_firmware) ||
        set(b->u.hvm.smbios_firmware) || set(b->u.hvm.acpi_firmware))
        return refuse(ctx, why, why_len,
                      "firmware files named in the configuration (firmware=, "
                      "system_firmware=, smbios_firmware=, acpi_firmware=)");
    if (!chardev_ok(b->u.hvm.serial) || !chardev_ok(b->u.hvm.usbdevice))
        return refuse(ctx, why, why_len,
                      "serial/usbdevice backends other than pty: they name host "
                      "files or devices");
    for (int i = 0; b->u.hvm.serial_list && b->u.hvm.serial_list[i]; i++)
        if (!chardev_ok(b->u.hvm.serial_list[i]))
            return refuse(ctx, why, why_len, "a serial backend other than pty");
    for (int i = 0; b->u.hvm.usbdevice_list && b->u.hvm.usbdevice_list[i]; i++)
        if (!strncmp(b->u.hvm.usbdevice_list[i], "host:", 5))
            return refuse(ctx, why, why_len, "USB host passthrough (usbdevice=host:...)");
    return 0;
}

static void qmp_path(uint32_t domid, char *buf, size_t len)
{
    /* The unit tests put a fake QEMU elsewhere. */
    const char *dir = getenv("MIG_XEN_QMP_DIR");
    snprintf(buf, len, "%s/qmp-libxl-%u", set(dir) ? dir : QMP_DIR_DEFAULT, domid);
}

static int connect_dm(struct mig_ctx *ctx, uint32_t domid, struct mig__qmp **q)
{
    char path[108];
    qmp_path(domid, path, sizeof(path));
    int rc = mig__qmp_connect(ctx, path, MIG_QMP_DEFAULT_MS, q);
    if (rc < 0)
        MIG_LOG(ctx, ERROR, "domain %u: cannot reach its device model over QMP (%s): %s", domid,
                path, mig_strerror(rc));
    return rc;
}

/* Log QEMU's error reply with the command. */
static int dm_failed(struct mig_ctx *ctx, uint32_t domid, struct mig__qmp *q, const char *cmd,
                     int rc)
{
    if (rc == -MIG_EBACKEND)
        MIG_LOG(ctx, ERROR, "domain %u: QEMU refused %s: %s: %s", domid, cmd,
                mig__qmp_last_error_class(q), mig__qmp_last_error_desc(q));
    else
        MIG_LOG(ctx, ERROR, "domain %u: %s: %s", domid, cmd, mig_strerror(rc));
    return rc;
}

int mig__xen_hvm_dm_logdirty(struct mig_ctx *ctx, uint32_t domid, bool enable,
                             uint64_t *rtt_us_out)
{
    struct mig__qmp *q = NULL;
    struct mig__qmp_args a;
    int rc = connect_dm(ctx, domid, &q);
    if (rc < 0)
        return rc;
    mig__qmp_args_init(&a);
    mig__qmp_args_bool(&a, "enable", enable);
    uint64_t t0 = mig__now_ns();
    rc = mig__qmp_execute(q, "xen-set-global-dirty-log", &a, NULL);
    if (rtt_us_out)
        *rtt_us_out = (mig__now_ns() - t0) / 1000u;
    if (rc < 0)
        dm_failed(ctx, domid, q, "xen-set-global-dirty-log", rc);
    else
        MIG_LOG(ctx, INFO, "domain %u: QEMU's dirty log %s", domid, enable ? "on" : "off");
    mig__qmp_close(q);
    return rc;
}

int mig__xen_hvm_save_dm(struct mig_ctx *ctx, uint32_t domid, const char *dir, uint8_t **buf_out,
                         uint32_t *len_out, uint64_t *ms_out)
{
    struct mig__qmp *q = NULL;
    struct mig__qmp_args a;
    char path[256];
    int wfd = -1, rfd = -1, rc;
    bool fdset = false;
    uint8_t *buf = NULL;
    struct stat st;

    *buf_out = NULL;
    *len_out = 0;
    uint64_t t0 = mig__now_ns();
    /* Our own file, opened by us and handed over as an fd: QEMU may run as
     * an unprivileged user that could not open a path of ours. */
    snprintf(path, sizeof(path), "%s/dm-state.%u.XXXXXX", set(dir) ? dir : "/tmp", domid);
    int tfd = mkostemp(path, O_CLOEXEC);
    if (tfd < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "cannot create the device-state file %s: %s", path, strerror(errno));
        return rc;
    }
    /* QEMU picks an fdset member by access mode: write-only, as it saves. */
    wfd = open(path, O_WRONLY | O_CLOEXEC);
    rfd = open(path, O_RDONLY | O_CLOEXEC);
    int err = errno;
    unlink(path); /* nothing is left behind, whatever happens next */
    close(tfd);
    if (wfd < 0 || rfd < 0) {
        rc = mig__from_errno(err);
        goto out;
    }
    rc = connect_dm(ctx, domid, &q);
    if (rc < 0)
        goto out;
    rc = mig__qmp_execute(q, "stop", NULL, NULL); /* libxl's suspend did it already: idempotent */
    if (rc < 0) {
        dm_failed(ctx, domid, q, "stop", rc);
        goto out;
    }
    mig__qmp_args_init(&a);
    mig__qmp_args_int(&a, "fdset-id", FDSET_ID);
    rc = mig__qmp_execute_fd(q, "add-fd", &a, wfd, NULL);
    if (rc < 0) {
        dm_failed(ctx, domid, q, "add-fd", rc);
        goto out;
    }
    fdset = true;
    char fdpath[32];
    snprintf(fdpath, sizeof(fdpath), "/dev/fdset/%d", FDSET_ID);
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "filename", fdpath);
    /* live=true as xl migrate: QEMU releases its disk images (locks) so the
     * destination's QEMU can open them; "cont" takes them back if the
     * migration fails and the source resumes. */
    mig__qmp_args_bool(&a, "live", true);
    rc = mig__qmp_execute(q, "xen-save-devices-state", &a, NULL);
    if (rc < 0) {
        dm_failed(ctx, domid, q, "xen-save-devices-state", rc);
        goto out;
    }
    if (fstat(rfd, &st) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > MIG_XS_MAX_EMU_CONTEXT) {
        MIG_LOG(ctx, ERROR, "domain %u: QEMU's device state is %lld bytes (limit %u)", domid,
                (long long)st.st_size, MIG_XS_MAX_EMU_CONTEXT);
        rc = -MIG_ETOOBIG;
        goto out;
    }
    buf = malloc((size_t)st.st_size);
    if (!buf) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    if (pread(rfd, buf, (size_t)st.st_size, 0) != st.st_size) {
        rc = -MIG_EIO;
        goto out;
    }
    *buf_out = buf;
    *len_out = (uint32_t)st.st_size;
    buf = NULL;
    *ms_out = (mig__now_ns() - t0) / 1000000u;
    MIG_LOG(ctx, INFO, "domain %u: device model state %u bytes, saved in %" PRIu64 " ms", domid,
            *len_out, *ms_out);
out:
    if (fdset) {
        mig__qmp_args_init(&a);
        mig__qmp_args_int(&a, "fdset-id", FDSET_ID);
        if (mig__qmp_execute(q, "remove-fd", &a, NULL) < 0)
            MIG_LOG(ctx, WARN, "domain %u: QEMU keeps our fdset %d open", domid, FDSET_ID);
    }
    mig__qmp_close(q);
    free(buf);
    if (wfd >= 0)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
    return rc;
}

int mig__xen_hvm_xenstore_data(struct mig_ctx *ctx, uint32_t domid, uint8_t **buf_out,
                               uint32_t *len_out)
{
    static const char *const sub[] = {"start_addr", "size", "name"};
    struct xs_handle *xs = NULL;
    char root[96], path[256], key[160];
    char **ents = NULL;
    unsigned n = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = 0;

    *buf_out = NULL;
    *len_out = 0;
    xs = xs_open(0);
    if (!xs) {
        MIG_LOG(ctx, ERROR, "cannot open xenstore: %s", strerror(errno));
        return -MIG_EBACKEND;
    }
    /* QEMU (in dom0) writes under dom0's device-model tree for the domain. */
    snprintf(root, sizeof(root), "/local/domain/0/device-model/%u", domid);
    snprintf(path, sizeof(path), "%s/physmap", root);
    ents = xs_directory(xs, XBT_NULL, path, &n);
    for (unsigned i = 0; ents && i < n && rc == 0; i++) {
        for (size_t j = 0; j < sizeof(sub) / sizeof(sub[0]) && rc == 0; j++) {
            unsigned vlen = 0;
            snprintf(key, sizeof(key), "physmap/%s/%s", ents[i], sub[j]);
            snprintf(path, sizeof(path), "%s/%s", root, key);
            char *val = xs_read(xs, XBT_NULL, path, &vlen);
            if (!val) {
                MIG_LOG(ctx, ERROR, "domain %u: xenstore %s missing", domid, path);
                rc = -MIG_EBACKEND;
                break;
            }
            size_t kl = strlen(key) + 1, vl = strlen(val) + 1;
            uint8_t *p = len + kl + vl <= MIG_XS_MAX_EMU_XENSTORE ? realloc(buf, len + kl + vl)
                                                                   : NULL;
            if (!p) {
                rc = len + kl + vl > MIG_XS_MAX_EMU_XENSTORE ? -MIG_ETOOBIG : -MIG_ENOMEM;
            } else {
                buf = p;
                memcpy(buf + len, key, kl);
                memcpy(buf + len + kl, val, vl);
                len += kl + vl;
            }
            free(val);
        }
    }
    free(ents);
    xs_close(xs);
    if (rc == 0 && len && mig__xs_check_emu_xenstore(buf, (uint32_t)len) < 0) {
        MIG_LOG(ctx, ERROR, "domain %u: QEMU's physmap keys are not what libxl can restore", domid);
        rc = -MIG_EPROTO;
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *buf_out = buf;
    *len_out = (uint32_t)len;
    return 0;
}
