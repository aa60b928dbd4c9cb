/*
 * xen.c: the "xen:" domain backend (mig__hv_xen_ops), PVH guests on Xen 4.17
 * through libxl, libxc and libxenforeignmemory. Contract of what crosses to
 * the destination: docs/xen-stream.md.
 *
 * Source, arg "NAME|DOMID[,suspend-timeout=S]": the configuration is read at
 * open (before any throttling, so the cap never travels); log-dirty through
 * xc_shadow_control/xc_logdirty_control (CLEAN = get-and-clear); pages are
 * mapped per batch with one xenforeignmemory_map; throttling is the
 * scheduler cap (the admin's saved and restored); suspend/resume through
 * libxl as xl does; save_state gives the setup blob while the guest runs
 * and the checkpoint blob once it is suspended.
 *
 * Destination, arg "[disk-map=..][,net-map=..][,kernel-dir=..]
 * [,start-timeout=S]": load_state(setup) checks the configuration against
 * the allow-list (xen-config.c) and the free memory, then runs
 * libxl_domain_create_restore in a thread reading one end of a socketpair;
 * write_pages/write_zero/load_state(checkpoint) write the Xen stream into the
 * other end (xen-stream.c); ready joins the restore; commit renames and
 * unpauses; discard destroys.
 *
 * libxc's -1/errno and libxl's ERROR_* codes are converted here and go no
 * further.
 */
#include <config.h>

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xentoollog.h>
#include <libxl_utils.h>
#include <xen/hvm/params.h>

#define MIG_LOG_MODULE "hv-xen"
#include "hv-provider.h"
#include "xen-internal.h"
#include "xen-stream.h"
#include "../session/convergence.h"
#include "../profile/profile-internal.h"

#define PAGE                    4096u
#define BITS_UL                 (8 * sizeof(unsigned long))
#define DEFAULT_START_TIMEOUT_S 60u
#define READY_TIMEOUT_S         600u
#define NAME_MAX_LEN            63
#define NO_DOMID                ((uint32_t)INVALID_DOMID)

extern const struct mig__hv_ops mig__hv_xen_ops;

/* The HVM params Xen 4.17's saver sends for x86 HVM/PVH guests
 * (write_hvm_params in xg_sr_save_x86_hvm.c); the destination refuses others. */
static const uint32_t hvm_params[] = {
    HVM_PARAM_STORE_PFN,
    HVM_PARAM_IOREQ_PFN,
    HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN,
    HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN,
    HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN,
    HVM_PARAM_IDENT_PT,
    HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN,
    HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_X87_FIP_WIDTH,
    HVM_PARAM_MCA_CAP,
};

static const uint8_t zero_page[PAGE];

/* xentoollog sink forwarding libxl/libxc messages to the context's logger. */
struct mig_xtl {
    xentoollog_logger vtable;
    struct mig_ctx *ctx; /* borrowed */
};

struct xen_hv {
    struct mig__hv base;
    struct mig_xtl xtl;
    libxl_ctx *lx;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;

    /* ---- source ---- */
    uint32_t domid;
    char name[NAME_MAX_LEN + 1];      /* the domain's name at open */
    char cur_name[NAME_MAX_LEN + 16]; /* its name now (after a rename) */
    libxl_domain_config cfg;          /* read at open, before throttling */
    bool cfg_init;
    char *cfg_json; /* owned */
    uint64_t nr_pfns;
    uint32_t vcpus;
    unsigned suspend_timeout_s;
    bool logdirty;
    xc_hypercall_buffer_t bm_hbuf; /* the CLEAN bitmap, hypercall memory */
    unsigned bm_pages;
    libxl_domain_sched_params orig_sched; /* the admin's, restored on throttle(0)/close */
    bool sched_saved;
    bool throttled;
    bool suspended;
    bool destroyed;
    bool hvm;            /* HVM guest: a device model to drive (xen-hvm.c) */
    bool dm_logdirty;    /* QEMU's own dirty log is on */
    uint64_t dm_rtt_us;  /* us: QMP round trip measured before round 0 */
    uint64_t dm_save_ms; /* ms: the device-state save, measured at the switchover */
    unsigned long *src_holes; /* pfns that did not map at setup, not yet sent */

    /* ---- destination ---- */
    struct mig__xen_rules rules;
    unsigned start_timeout_s;
    bool autoballoon; /* shrink dom0 for the incoming domain, as xl */
    struct mig__dom_info info;
    char incoming[NAME_MAX_LEN + 16];
    bool have_info;
    libxl_domain_config dcfg; /* sanitised, given to libxl */
    bool dcfg_init;
    int sock[2]; /* [0] we write, [1] libxl reads */
    struct mig__xs_writer w;
    bool writer_init;
    unsigned long *holes; /* pfns that were holes on the source, not yet seen */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;  /* restore thread running, head written */
    int start_err; /* setup failed: write_pages gives up */
    pthread_t thread;
    bool thread_live;
    bool thread_done;
    int restore_rc; /* libxl's rc, converted */
    uint32_t new_domid;
    bool tail_written;
    uint64_t t_end_ns;
    bool built; /* restore finished: a domain exists */
    bool committed;
};

struct mig__hv_map {
    void *addr;
    size_t n;
};

/* ---- error conversion ------------------------------------------------- */

static int from_libxl(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case ERROR_NOMEM:
        return -MIG_ENOMEM;
    case ERROR_INVAL:
        return -MIG_EINVAL;
    case ERROR_GUEST_TIMEDOUT:
    case ERROR_TIMEDOUT:
        return -MIG_ETIMEOUT;
    case ERROR_DOMAIN_NOTFOUND:
    case ERROR_NOT_READY:
        return -MIG_ENOENT;
    case ERROR_NOPARAVIRT:
    case ERROR_NI:
        return -MIG_ENOTSUP;
    default:
        return -MIG_EBACKEND;
    }
}

/* libxc: -1 with errno. */
static int from_xc(int r)
{
    if (r >= 0)
        return 0;
    return errno ? mig__from_errno(errno) : -MIG_EBACKEND;
}

/* ---- logger ----------------------------------------------------------- */

static void mig_xtl_vmessage(xentoollog_logger *l, xentoollog_level level, int errnoval,
                             const char *context, const char *format, va_list al)
{
    struct mig_xtl *x = (struct mig_xtl *)l;
    enum mig_log_level lv = level >= XTL_ERROR  ? MIG_LOG_ERROR
                            : level >= XTL_WARN ? MIG_LOG_WARN
                            : level >= XTL_INFO ? MIG_LOG_DEBUG
                                                : MIG_LOG_DEBUG;
    if (!mig__log_enabled(x->ctx, lv))
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), format, al);
    if (errnoval >= 0)
        mig__log(x->ctx, lv, MIG_LOG_MODULE, "%s%s%s: %s", context ? context : "",
                 context ? ": " : "", msg, strerror(errnoval));
    else
        mig__log(x->ctx, lv, MIG_LOG_MODULE, "%s%s%s", context ? context : "", context ? ": " : "",
                 msg);
}

static void mig_xtl_progress(xentoollog_logger *l, const char *context, const char *doing_what,
                             int percent, unsigned long done, unsigned long total)
{
}

static void mig_xtl_destroy(xentoollog_logger *l)
{
}

/* ---- helpers ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return mig__now_ns() / 1000000u;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int parse_uint(const char *v, unsigned max, unsigned *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || n == 0 || n > max)
        return -MIG_EINVAL;
    *out = (unsigned)n;
    return 0;
}

static int open_libs(struct xen_hv *x)
{
    int rc;
    x->xtl.vtable.vmessage = mig_xtl_vmessage;
    x->xtl.vtable.progress = mig_xtl_progress;
    x->xtl.vtable.destroy = mig_xtl_destroy;
    x->xtl.ctx = x->base.ctx;
    rc = libxl_ctx_alloc(&x->lx, LIBXL_VERSION, 0, &x->xtl.vtable);
    if (rc) {
        x->lx = NULL;
        MIG_LOG(x->base.ctx, ERROR,
                "cannot open libxl (is this dom0 of a running Xen, and are we root?)");
        return -MIG_EBACKEND;
    }
    /* libxl forks (hotplug scripts, its save helper): it must reap only its
     * own children, never the engine's (ssh transport). */
    static const libxl_childproc_hooks hooks = {
        .chldowner = libxl_sigchld_owner_libxl_always_selective_reap,
    };
    libxl_childproc_setmode(x->lx, &hooks, NULL);
    x->xch = xc_interface_open(&x->xtl.vtable, &x->xtl.vtable, 0);
    if (!x->xch) {
        MIG_LOG(x->base.ctx, ERROR, "cannot open the hypervisor interface: %s", strerror(errno));
        return -MIG_EBACKEND;
    }
    return 0;
}

/* Fill 'info' for domid; -MIG_ENOENT if it does not exist. */
static int dominfo(struct xen_hv *x, uint32_t domid, xc_domaininfo_t *info)
{
    int r = xc_domain_getinfolist(x->xch, domid, 1, info);
    if (r < 0)
        return from_xc(r);
    if (r != 1 || info->domain != domid)
        return -MIG_ENOENT;
    return 0;
}

/* ---- open / close ----------------------------------------------------- */

/* A UUID names the domain whose libxl uuid it is. */
static int uuid_to_domid(struct xen_hv *x, const char *spec, uint32_t *domid)
{
    libxl_uuid u;
    int n = 0, rc = -MIG_ENOENT;
    if (strlen(spec) != 36 || libxl_uuid_from_string(&u, spec))
        return -MIG_EINVAL;
    libxl_dominfo *list = libxl_list_domain(x->lx, &n);
    for (int i = 0; list && i < n; i++)
        if (libxl_uuid_compare(&list[i].uuid, &u) == 0) {
            *domid = list[i].domid;
            rc = 0;
            break;
        }
    if (list)
        libxl_dominfo_list_free(list, n);
    return rc;
}

static int open_source(struct xen_hv *x, char *spec)
{
    struct mig_ctx *ctx = x->base.ctx;
    xc_domaininfo_t di;
    xen_pfn_t gpfns = 0;
    int rc;

    if (all_digits(spec)) {
        unsigned long id = strtoul(spec, NULL, 10);
        if (id == 0 || id >= DOMID_FIRST_RESERVED) {
            MIG_LOG(ctx, ERROR, "domain id %s cannot be migrated", spec);
            return -MIG_EINVAL;
        }
        x->domid = (uint32_t)id;
    } else if (uuid_to_domid(x, spec, &x->domid) == 0) {
        /* found by UUID */
    } else if (libxl_name_to_domid(x->lx, spec, &x->domid)) {
        MIG_LOG(ctx, ERROR, "no domain named '%s'", spec);
        return -MIG_ENOENT;
    }
    rc = dominfo(x, x->domid, &di);
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "domain %s: not found", spec);
        return rc;
    }
    if (di.flags & XEN_DOMINF_dying) {
        MIG_LOG(ctx, ERROR, "domain %s is dying", spec);
        return -MIG_ENOENT;
    }
    if (!(di.flags & XEN_DOMINF_hvm_guest)) {
        MIG_LOG(ctx, ERROR,
                "domain %s is PV: not supported (this Xen has no shadow paging, so no "
                "log-dirty for PV guests); use PVH",
                spec);
        return -MIG_ENOTSUP;
    }
    libxl_domain_config_init(&x->cfg);
    x->cfg_init = true;
    rc = from_libxl(libxl_retrieve_domain_configuration(x->lx, x->domid, &x->cfg, NULL));
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "domain %s: cannot read its configuration", spec);
        return rc;
    }
    x->hvm = x->cfg.c_info.type == LIBXL_DOMAIN_TYPE_HVM;
    if (x->cfg.c_info.type != LIBXL_DOMAIN_TYPE_PVH && !x->hvm) {
        MIG_LOG(ctx, ERROR, "domain %s is %s: only PVH and HVM guests are supported", spec,
                libxl_domain_type_to_string(x->cfg.c_info.type));
        return -MIG_ENOTSUP;
    }
    if (x->hvm) {
        char why[256];
        rc = mig__xen_hvm_check(ctx, &x->cfg, why, sizeof(why));
        if (rc < 0)
            return rc; /* logged with the reason, before round 0 */
    }
    if (!x->cfg.c_info.name || strlen(x->cfg.c_info.name) > NAME_MAX_LEN) {
        MIG_LOG(ctx, ERROR, "domain %s: name missing or too long", spec);
        return -MIG_EINVAL;
    }
    snprintf(x->name, sizeof(x->name), "%s", x->cfg.c_info.name);
    snprintf(x->cur_name, sizeof(x->cur_name), "%s", x->name);
    x->vcpus = x->cfg.b_info.max_vcpus > 0 ? (uint32_t)x->cfg.b_info.max_vcpus : 1;
    x->cfg_json = libxl_domain_config_to_json(x->lx, &x->cfg);
    if (!x->cfg_json)
        return -MIG_ENOMEM;
    if (xc_domain_nr_gpfns(x->xch, x->domid, &gpfns) < 0 || gpfns == 0) {
        MIG_LOG(ctx, ERROR, "domain %s: cannot read its memory size", spec);
        return -MIG_EBACKEND;
    }
    x->nr_pfns = gpfns;
    /* The admin's scheduler setting, before we ever touch it. */
    libxl_domain_sched_params_init(&x->orig_sched);
    if (libxl_domain_sched_params_get(x->lx, x->domid, &x->orig_sched) == 0)
        x->sched_saved = true;
    x->fmem = xenforeignmemory_open(&x->xtl.vtable, 0);
    if (!x->fmem) {
        MIG_LOG(ctx, ERROR, "cannot open foreign memory mapping: %s", strerror(errno));
        return -MIG_EBACKEND;
    }
    MIG_LOG(ctx, INFO, "source %s (domid %u): %s, %u vCPUs, %" PRIu64 " pfns", x->name, x->domid,
            x->hvm ? "HVM" : "PVH", x->vcpus, x->nr_pfns);
    return 0;
}

static int open_dest(struct xen_hv *x, char *opts)
{
    x->start_timeout_s = DEFAULT_START_TIMEOUT_S;
    x->autoballoon = true;
    int rc = mig__xen_parse_dirs("/var/lib/xen/boot;/boot", &x->rules);
    char *save = NULL;
    for (char *kv = strtok_r(opts, ",", &save); rc == 0 && kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = -MIG_EINVAL;
            break;
        }
        *eq = 0;
        const char *v = eq + 1;
        if (strcmp(kv, "disk-map") == 0)
            rc = mig__xen_parse_map(v, x->rules.disks, MIG_XEN_MAX_MAP, &x->rules.n_disks);
        else if (strcmp(kv, "net-map") == 0)
            rc = mig__xen_parse_map(v, x->rules.nets, MIG_XEN_MAX_MAP, &x->rules.n_nets);
        else if (strcmp(kv, "kernel-dir") == 0)
            rc = mig__xen_parse_dirs(v, &x->rules);
        else if (strcmp(kv, "start-timeout") == 0)
            rc = parse_uint(v, 3600, &x->start_timeout_s);
        else if (strcmp(kv, "autoballoon") == 0 && (!strcmp(v, "on") || !strcmp(v, "off")))
            x->autoballoon = strcmp(v, "on") == 0;
        else
            rc = -MIG_EINVAL;
        if (rc < 0)
            MIG_LOG(x->base.ctx, ERROR, "xen: bad option '%s=%s'", kv, v);
    }
    return rc;
}

static void xen_close(struct mig__hv *hv);

static int xen_open(struct mig_ctx *ctx, const char *arg, enum mig_role role,
                    struct mig__hv **hv_out)
{
    struct xen_hv *x = calloc(1, sizeof(*x));
    char *copy = strdup(arg ? arg : "");
    int rc;
    *hv_out = NULL;
    if (!x || !copy) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    x->base.ops = &mig__hv_xen_ops;
    x->base.ctx = ctx;
    x->base.role = role;
    x->sock[0] = x->sock[1] = -1;
    x->bm_hbuf.ubuf = (void *)-1;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    rc = open_libs(x);
    if (rc < 0)
        goto out;
    if (role == MIG_ROLE_SOURCE) {
        char *opts = strchr(copy, ',');
        x->suspend_timeout_s = 60;
        if (opts) {
            *opts++ = 0;
            char *save = NULL;
            for (char *kv = strtok_r(opts, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                if (strncmp(kv, "suspend-timeout=", 16) == 0 &&
                    parse_uint(kv + 16, 3600, &x->suspend_timeout_s) == 0)
                    continue;
                MIG_LOG(ctx, ERROR, "xen: bad source option '%s'", kv);
                rc = -MIG_EINVAL;
                goto out;
            }
        }
        if (!copy[0]) {
            MIG_LOG(ctx, ERROR, "xen: name a domain (xen:NAME or xen:DOMID)");
            rc = -MIG_EINVAL;
            goto out;
        }
        rc = open_source(x, copy);
    } else {
        rc = open_dest(x, copy);
    }
out:
    free(copy);
    if (rc < 0) {
        if (x)
            xen_close(&x->base);
        return rc;
    }
    *hv_out = &x->base;
    return 0;
}

static int logdirty_disable(struct mig__hv *hv);
static int throttle(struct mig__hv *hv, unsigned percent);
static int discard(struct mig__hv *hv);
static int join_restore(struct xen_hv *x, unsigned timeout_s);
static void close_writer(struct xen_hv *x);

static void xen_close(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (!x)
        return;
    if (x->base.role == MIG_ROLE_SOURCE) {
        /* Log-dirty off and the admin's cap back; run state untouched. */
        logdirty_disable(hv);
        if (x->throttled)
            throttle(hv, 0);
    } else if (!x->committed) {
        discard(hv);
    }
    if (x->base.role == MIG_ROLE_DESTINATION) {
        join_restore(x, READY_TIMEOUT_S);
        close_writer(x);
    }
    if (x->cfg_init)
        libxl_domain_config_dispose(&x->cfg);
    if (x->dcfg_init)
        libxl_domain_config_dispose(&x->dcfg);
    if (x->sched_saved)
        libxl_domain_sched_params_dispose(&x->orig_sched);
    free(x->cfg_json);
    free(x->holes);
    free(x->src_holes);
    mig__xen_rules_dispose(&x->rules);
    if (x->writer_init)
        mig__xs_writer_dispose(&x->w);
    if (x->fmem)
        xenforeignmemory_close(x->fmem);
    if (x->xch)
        xc_interface_close(x->xch);
    if (x->lx)
        libxl_ctx_free(x->lx);
    pthread_cond_destroy(&x->cond);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

/* ---- facts ------------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (b->oom)
            return;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A JSON string; control characters and quotes escaped. */
static void sb_str(struct sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else if (c < 0x20)
            sb_printf(b, "\\u%04x", c);
        else
            sb_printf(b, "%c", c);
    }
    sb_printf(b, "\"");
}

/* The names of the features a serialised CPUID policy sets, from the
 * profile module's table (cpuid.c): the names profiles and the pre-flight
 * check compare. */
static void sb_policy_features(struct sbuf *b, const xen_cpuid_leaf_t *l, uint32_t n)
{
    bool first = true;
    sb_printf(b, "[");
    for (size_t i = 0; i < mig__cpuid_count(); i++) {
        const struct mig__cpuid_feat *f = mig__cpuid_at(i);
        for (uint32_t j = 0; j < n; j++) {
            if (l[j].leaf != f->leaf ||
                (f->subleaf != MIG__CPUID_NO_SUBLEAF && l[j].subleaf != f->subleaf))
                continue;
            uint32_t v = f->reg == MIG__REG_EAX   ? l[j].a
                         : f->reg == MIG__REG_EBX ? l[j].b
                         : f->reg == MIG__REG_ECX ? l[j].c
                                                  : l[j].d;
            if (v & (1u << f->bit)) {
                sb_printf(b, "%s", first ? "" : ",");
                sb_str(b, f->name);
                first = false;
            }
            break;
        }
    }
    sb_printf(b, "]");
}

/* A serialised policy: the domain's (domid) or, with system >= 0, Xen's
 * system policy of that index. Caller frees both arrays. */
static int policy_of(struct xen_hv *x, int system, xen_cpuid_leaf_t **leaves, uint32_t *nl,
                     xen_msr_entry_t **msrs, uint32_t *nm);

static int policy_of(struct xen_hv *x, int system, xen_cpuid_leaf_t **leaves, uint32_t *nl,
                     xen_msr_entry_t **msrs, uint32_t *nm)
{
    xc_cpu_policy_t *pol = NULL;
    int rc = -MIG_EBACKEND;
    *leaves = NULL;
    *msrs = NULL;
    if (xc_cpu_policy_get_size(x->xch, nl, nm) < 0)
        goto out;
    *leaves = calloc(*nl ? *nl : 1, sizeof(**leaves));
    *msrs = calloc(*nm ? *nm : 1, sizeof(**msrs));
    pol = xc_cpu_policy_init();
    if (!*leaves || !*msrs || !pol) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    if ((system >= 0 ? xc_cpu_policy_get_system(x->xch, (unsigned)system, pol)
                     : xc_cpu_policy_get_domain(x->xch, x->domid, pol)) < 0 ||
        xc_cpu_policy_serialise(x->xch, pol, *leaves, nl, *msrs, nm) < 0) {
        if (system >= 0)
            MIG_LOG(x->base.ctx, ERROR, "cannot read Xen's CPUID policy %d", system);
        else
            MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot read its CPUID/MSR policy", x->domid);
        goto out;
    }
    rc = 0;
out:
    xc_cpu_policy_destroy(pol);
    if (rc < 0) {
        free(*leaves);
        free(*msrs);
        *leaves = NULL;
        *msrs = NULL;
    }
    return rc;
}

/* The host's Linux bridges. MIG_XEN_SYSFS_NET replaces /sys/class/net (the
 * unit tests describe a host's bridges with it). */
static void sb_bridges(struct sbuf *b)
{
    const char *root = getenv("MIG_XEN_SYSFS_NET");
    if (!root || !*root)
        root = "/sys/class/net";
    DIR *d = opendir(root);
    struct dirent *e;
    bool first = true;
    sb_printf(b, "[");
    while (d && (e = readdir(d))) {
        char path[PATH_MAX];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/bridge", root, e->d_name);
        if (access(path, F_OK) != 0)
            continue;
        sb_printf(b, "%s", first ? "" : ",");
        sb_str(b, e->d_name);
        first = false;
    }
    if (d)
        closedir(d);
    sb_printf(b, "]");
}

static int xen_facts(struct mig__hv *hv, char **json_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    struct sbuf b = {0};
    char host[256] = "";
    xen_extraversion_t extra = "";
    xen_cpuid_leaf_t *hleaves = NULL;
    xen_msr_entry_t *hmsrs = NULL;
    uint32_t hnl = 0, hnm = 0;
    libxl_physinfo pi;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    char vendor[13] = "";
    int rc = 0;

    *json_out = NULL;
    libxl_physinfo_init(&pi);
    gethostname(host, sizeof(host) - 1);
    int ver = xc_version(x->xch, XENVER_version, NULL);
    if (ver < 0 || xc_version(x->xch, XENVER_extraversion, &extra) < 0) {
        rc = -MIG_EBACKEND;
        goto out;
    }
    extra[sizeof(extra) - 1] = 0;
    if (libxl_get_physinfo(x->lx, &pi)) {
        rc = -MIG_EBACKEND;
        goto out;
    }
    __get_cpuid(0, &eax, &ebx, &ecx, &edx);
    memcpy(vendor, &ebx, 4);
    memcpy(vendor + 4, &edx, 4);
    memcpy(vendor + 8, &ecx, 4);
    /* What a guest could be given here: Xen's HVM max policy (PVH guests
     * are HVM guests to Xen), as docs/profiles.md asks. */
    rc = policy_of(x, XEN_SYSCTL_cpu_policy_hvm_max, &hleaves, &hnl, &hmsrs, &hnm);
    if (rc < 0)
        goto out;
    sb_printf(&b, "{\"hostname\":");
    sb_str(&b, host);
    sb_printf(&b, ",\"backend\":\"xen\",\"xen_version\":\"%d.%d%s\"", ver >> 16, ver & 0xffff,
              extra);
    sb_printf(&b, ",\"cpu\":{\"vendor\":");
    sb_str(&b, vendor);
    sb_printf(&b, ",\"features\":");
    sb_policy_features(&b, hleaves, hnl);
    sb_printf(&b, "},\"virt_caps\":[");
    const char *caps[] = {pi.cap_hvm ? "hvm" : NULL,
                          pi.cap_pv ? "pv" : NULL,
                          pi.cap_hap ? "hap" : NULL,
                          pi.cap_shadow ? "shadow" : NULL,
                          pi.cap_hvm_directio ? "hvm_directio" : NULL,
                          pi.cap_iommu_hap_pt_share ? "iommu_hap_pt_share" : NULL,
                          pi.cap_vmtrace ? "vmtrace" : NULL,
                          pi.cap_vpmu ? "vpmu" : NULL,
                          pi.cap_gnttab_v1 ? "gnttab-v1" : NULL,
                          pi.cap_gnttab_v2 ? "gnttab-v2" : NULL};
    bool first = true;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (caps[i]) {
            sb_printf(&b, "%s\"%s\"", first ? "" : ",", caps[i]);
            first = false;
        }
    /* Xen 4.17 does not tell dom0 whether the CPU scales the TSC (a VMX
     * secondary control / SVM TscRateMsr, both hidden from a PV dom0):
     * report false (profiles then pin the TSC frequency) and, separately,
     * the invariant TSC bit dom0 does see (e7d bit 8). */
    __get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx);
    sb_printf(&b, "],\"tsc_scaling\":false,\"tsc_invariant\":%s",
              (edx & (1u << 8)) ? "true" : "false");
    sb_printf(&b, ",\"free_memory_bytes\":%" PRIu64 ",\"total_memory_bytes\":%" PRIu64,
              pi.free_pages * PAGE, pi.total_pages * PAGE);
    sb_printf(&b, ",\"bridges\":");
    sb_bridges(&b);
    sb_printf(&b, ",\"storage_paths\":[");
    for (unsigned i = 0; i < x->rules.n_disks; i++) {
        sb_printf(&b, "%s", i ? "," : "");
        sb_str(&b, x->rules.disks[i].dst);
    }
    sb_printf(&b, "],\"disk_map\":[");
    for (unsigned i = 0; i < x->rules.n_disks; i++) {
        char pair[2 * PATH_MAX + 2];
        snprintf(pair, sizeof(pair), "%s=%s", x->rules.disks[i].src, x->rules.disks[i].dst);
        sb_printf(&b, "%s", i ? "," : "");
        sb_str(&b, pair);
    }
    sb_printf(&b, "],\"net_map\":[");
    for (unsigned i = 0; i < x->rules.n_nets; i++) {
        char pair[256];
        snprintf(pair, sizeof(pair), "%s=%s", x->rules.nets[i].src, x->rules.nets[i].dst);
        sb_printf(&b, "%s", i ? "," : "");
        sb_str(&b, pair);
    }
    sb_printf(&b, "]");
    if (x->base.role == MIG_ROLE_SOURCE && x->cfg_init) {
        xen_cpuid_leaf_t *leaves = NULL;
        xen_msr_entry_t *msrs = NULL;
        uint32_t nl = 0, nm = 0;
        libxl_domain_build_info *bi = &x->cfg.b_info;
        rc = policy_of(x, -1, &leaves, &nl, &msrs, &nm);
        if (rc < 0)
            goto out;
        sb_printf(&b, ",\"guest\":{\"name\":");
        sb_str(&b, x->name);
        sb_printf(&b,
                  ",\"mem_bytes\":%" PRIu64 ",\"max_mem_bytes\":%" PRIu64
                  ",\"vcpus\":%u,\"cpu_features\":",
                  bi->target_memkb * 1024, bi->max_memkb * 1024, x->vcpus);
        sb_policy_features(&b, leaves, nl);
        free(leaves);
        free(msrs);
        bool nested =
            !libxl_defbool_is_default(bi->nested_hvm) && libxl_defbool_val(bi->nested_hvm);
        sb_printf(&b, ",\"passthrough\":%s,\"nested_hvm\":%s,\"pod\":%s,\"bridges\":[",
                  x->cfg.num_pcidevs || bi->num_iomem || bi->num_irqs ? "true" : "false",
                  nested ? "true" : "false", bi->target_memkb < bi->max_memkb ? "true" : "false");
        for (int i = 0; i < x->cfg.num_nics; i++) {
            sb_printf(&b, "%s", i ? "," : "");
            sb_str(&b, x->cfg.nics[i].bridge ? x->cfg.nics[i].bridge : "");
        }
        sb_printf(&b, "],\"disks\":[");
        for (int i = 0; i < x->cfg.num_disks; i++) {
            sb_printf(&b, "%s", i ? "," : "");
            sb_str(&b, x->cfg.disks[i].pdev_path ? x->cfg.disks[i].pdev_path : "");
        }
        sb_printf(&b, "]}");
    }
    sb_printf(&b, "}");
    if (b.oom) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    *json_out = b.p;
    b.p = NULL;
out:
    free(b.p);
    free(hleaves);
    free(hmsrs);
    libxl_physinfo_dispose(&pi);
    return rc;
}

static int xen_info(struct mig__hv *hv, struct mig__dom_info *info_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    memset(info_out, 0, sizeof(*info_out));
    if (x->base.role != MIG_ROLE_SOURCE)
        return -MIG_EINVAL;
    snprintf(info_out->name, sizeof(info_out->name), "%s", x->name);
    info_out->nr_pages = x->nr_pfns;
    info_out->page_size = PAGE;
    info_out->vcpus = x->vcpus;
    snprintf(info_out->config, sizeof(info_out->config),
             "type=%s,maxmem_kb=%" PRIu64 ",stream=libxc-v3", x->hvm ? "hvm" : "pvh",
             x->cfg.b_info.max_memkb);
    /* the vifs, for the network handoff (xen-net.c) */
    char vifs[sizeof(info_out->config)];
    unsigned skipped = 0;
    size_t used = strlen(info_out->config);
    int nv = mig__xen_vifs_text(&x->cfg, x->domid, vifs, sizeof(vifs), &skipped);
    if (nv > 0 && used + strlen(vifs) < sizeof(info_out->config))
        memcpy(info_out->config + used, vifs, strlen(vifs) + 1);
    else if (nv != 0)
        MIG_LOG(x->base.ctx, WARN, "%s: its vifs do not fit the description: no network handoff",
                x->name);
    if (skipped)
        MIG_LOG(x->base.ctx, WARN, "%s: %u vif(s) left out of the network handoff (names)",
                x->name, skipped);
    return 0;
}

/* Destination: the new domain's vifs, named as here (xen-net.c). */
static int xen_vifs(struct mig__hv *hv, char *out, size_t cap)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (x->base.role != MIG_ROLE_DESTINATION || !x->built || !x->dcfg_init)
        return -MIG_ESTATE;
    int n = mig__xen_vifs_text(&x->dcfg, x->new_domid, out, cap, NULL);
    return n < 0 ? n : 0;
}

/* An HVM guest's device model: QEMU stops and saves its devices on the
 * source (measured at the last switchover of this process, else
 * DM_SAVE_MS_DEFAULT) and a fresh QEMU loads them on the destination
 * (DM_RESTORE_MS_DEFAULT: libxl starts it inside the downtime); the QMP
 * round trip measured before round 0 is added for each of the two QMP
 * exchanges at the switchover. PVH has no device model. */
#define DM_SAVE_MS_DEFAULT    20u
#define DM_RESTORE_MS_DEFAULT 150u
static uint64_t xen_state_cost_ms(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (!x->hvm)
        return 0;
    uint64_t save = x->dm_save_ms ? x->dm_save_ms : DM_SAVE_MS_DEFAULT;
    return save + DM_RESTORE_MS_DEFAULT + 2 * ((x->dm_rtt_us + 999) / 1000);
}

static const char *xen_tracking(struct mig__hv *hv)
{
    return "xen-logdirty";
}

/* ---- log-dirty -------------------------------------------------------- */

static int logdirty_enable(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &x->bm_hbuf);
    if (x->logdirty)
        return 0;
    size_t bytes = (x->nr_pfns + BITS_UL - 1) / BITS_UL * sizeof(unsigned long);
    x->bm_pages = (unsigned)((bytes + PAGE - 1) / PAGE);
    bitmap = xc_hypercall_buffer_alloc_pages(x->xch, bitmap, (int)x->bm_pages);
    if (!bitmap) {
        MIG_LOG(x->base.ctx, ERROR, "cannot allocate the dirty bitmap (%u pages)", x->bm_pages);
        x->bm_pages = 0;
        return -MIG_ENOMEM;
    }
    /* HVM: QEMU first, so its own writes to guest memory (DMA, VRAM) are
     * reported to Xen's log too (Xen's saver: x86_hvm_setup). */
    if (x->hvm && !x->dm_logdirty) {
        int rc = mig__xen_hvm_dm_logdirty(x->base.ctx, x->domid, true, &x->dm_rtt_us);
        if (rc < 0) {
            xc_hypercall_buffer_free_pages(x->xch, bitmap, (int)x->bm_pages);
            x->bm_pages = 0;
            return rc;
        }
        x->dm_logdirty = true;
    }
    int r = xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0);
    int on1 = r < 0 ? errno : 0, off = 0, on2 = 0;
    if (r < 0) {
        /* Already on: an HVM guest's VRAM tracking (stdvga/cirrus) holds
         * log-dirty mode, or an aborted migration left it. As Xen's saver
         * (enable_logdirty): off, then on again. */
        r = xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
        off = r < 0 ? errno : 0;
        if (r == 0) {
            r = xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL,
                                  0);
            on2 = r < 0 ? errno : 0;
        }
    }
    if (r < 0) {
        int rc = from_xc(-1);
        MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot enable log-dirty: %s / off: %s / %s",
                x->domid, strerror(on1), off ? strerror(off) : "ok",
                on2 ? strerror(on2) : "-");
        xc_hypercall_buffer_free_pages(x->xch, bitmap, (int)x->bm_pages);
        x->bm_pages = 0;
        if (x->dm_logdirty && mig__xen_hvm_dm_logdirty(x->base.ctx, x->domid, false, NULL) == 0)
            x->dm_logdirty = false;
        return rc;
    }
    x->logdirty = true;
    return 0;
}

static int logdirty_clean(struct mig__hv *hv, unsigned long *out, uint64_t *ndirty_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &x->bm_hbuf);
    xc_shadow_op_stats_t stats = {0, 0};
    uint64_t n = 0;
    *ndirty_out = 0;
    if (!x->logdirty)
        return -MIG_ESTATE;
    size_t words = (x->nr_pfns + BITS_UL - 1) / BITS_UL;
    memset(bitmap, 0, words * sizeof(unsigned long));
    long long r = xc_logdirty_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                                      HYPERCALL_BUFFER(bitmap), x->nr_pfns, 0, &stats);
    if (r < 0) {
        int rc = from_xc(-1);
        MIG_LOG(x->base.ctx, ERROR, "domain %u: log-dirty CLEAN failed: %s", x->domid,
                strerror(errno));
        return rc;
    }
    /* Xen's bitmap is in guest pfn order with unsigned long words: the
     * engine's layout. Bits past nr_pfns are not ours. */
    for (size_t i = 0; i < words; i++) {
        unsigned long wd = bitmap[i];
        if (i == words - 1 && x->nr_pfns % BITS_UL)
            wd &= (1ul << (x->nr_pfns % BITS_UL)) - 1;
        n += (uint64_t)__builtin_popcountl(wd & ~out[i]);
        out[i] |= wd;
    }
    *ndirty_out = n;
    return 0;
}

static int logdirty_disable(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &x->bm_hbuf);
    int rc = 0;
    if (x->logdirty) {
        if (xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0) {
            rc = from_xc(-1);
            MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot turn log-dirty off: %s", x->domid,
                    strerror(errno));
        }
        x->logdirty = false;
    }
    if (x->dm_logdirty) {
        int r2 = mig__xen_hvm_dm_logdirty(x->base.ctx, x->domid, false, NULL);
        if (r2 < 0 && rc == 0)
            rc = r2;
        x->dm_logdirty = false; /* one try: QEMU may be gone (destroy) */
    }
    if (x->bm_pages) {
        xc_hypercall_buffer_free_pages(x->xch, bitmap, (int)x->bm_pages);
        x->bm_pages = 0;
    }
    return rc;
}

/* ---- pages ------------------------------------------------------------ */

/* First sight of a pfn that was a hole at setup: not mapped again (round 0
 * would otherwise try every pfn of the address space a second time). If
 * the guest populates it later, log-dirty reports it and it is mapped then.
 * Atomic: the sender threads race. */
static bool take_src_hole(struct xen_hv *x, uint64_t pfn)
{
    unsigned long bit = 1ul << (pfn % BITS_UL);
    if (!x->src_holes || !(x->src_holes[pfn / BITS_UL] & bit))
        return false;
    return __atomic_fetch_and(&x->src_holes[pfn / BITS_UL], ~bit, __ATOMIC_RELAXED) & bit;
}

static int map_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void **ptrs,
                     struct mig__hv_map **map_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    xen_pfn_t arr[MIG_XS_MAX_BATCH];
    int err[MIG_XS_MAX_BATCH];
    unsigned idx[MIG_XS_MAX_BATCH], k = 0;
    struct mig__hv_map *m = NULL;
    *map_out = NULL;
    if (n == 0 || n > MIG_XS_MAX_BATCH)
        return -MIG_EINVAL;
    for (unsigned i = 0; i < n; i++)
        if (pfns[i] >= x->nr_pfns)
            return -MIG_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        if (take_src_hole(x, pfns[i])) {
            ptrs[i] = zero_page; /* as Xen's saver, no data for a hole */
            continue;
        }
        idx[k] = i;
        arr[k++] = (xen_pfn_t)pfns[i];
    }
    m = calloc(1, sizeof(*m));
    if (!m)
        return -MIG_ENOMEM;
    if (k) {
        m->addr = xenforeignmemory_map(x->fmem, x->domid, PROT_READ, k, arr, err);
        if (!m->addr) {
            int rc = from_xc(-1);
            MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot map %u pages: %s", x->domid, k,
                    strerror(errno));
            free(m);
            return rc;
        }
        m->n = k;
    }
    /* A pfn that does not map is a hole (not populated): it reads as zero,
     * as Xen's saver sends such pfns without data. */
    for (unsigned j = 0; j < k; j++)
        ptrs[idx[j]] =
            err[j] ? (const void *)zero_page : (const uint8_t *)m->addr + (size_t)j * PAGE;
    *map_out = m;
    return 0;
}

static void unmap_pages(struct mig__hv *hv, struct mig__hv_map *m)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (!m)
        return;
    if (m->n && xenforeignmemory_unmap(x->fmem, m->addr, m->n) < 0)
        MIG_LOG(x->base.ctx, WARN, "unmapping %zu pages: %s", m->n, strerror(errno));
    free(m);
}

/* ---- throttle, suspend, resume --------------------------------------- */

static int set_cap(struct xen_hv *x, int cap)
{
    libxl_domain_sched_params p;
    libxl_domain_sched_params_init(&p);
    p.sched = x->orig_sched.sched;
    p.cap = cap;
    int rc = from_libxl(libxl_domain_sched_params_set(x->lx, x->domid, &p));
    libxl_domain_sched_params_dispose(&p);
    if (rc < 0)
        MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot set the scheduler cap to %d", x->domid, cap);
    return rc;
}

static int throttle(struct mig__hv *hv, unsigned percent)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (!x->sched_saved || (x->orig_sched.sched != LIBXL_SCHEDULER_CREDIT2 &&
                            x->orig_sched.sched != LIBXL_SCHEDULER_CREDIT)) {
        if (percent == 0)
            return 0;
        MIG_LOG(x->base.ctx, ERROR, "throttling needs the credit2 (or credit) scheduler");
        return -MIG_ENOTSUP;
    }
    if (percent == 0) {
        if (!x->throttled)
            return 0;
        int orig =
            x->orig_sched.cap == LIBXL_DOMAIN_SCHED_PARAM_CAP_DEFAULT ? 0 : x->orig_sched.cap;
        int rc = set_cap(x, orig);
        if (rc == 0)
            x->throttled = false;
        return rc;
    }
    int cap = (int)mig__throttle_to_cap(x->vcpus, percent);
    /* Never looser than what the admin set. */
    if (x->orig_sched.cap > 0 && x->orig_sched.cap < cap)
        cap = x->orig_sched.cap;
    int rc = set_cap(x, cap);
    if (rc == 0)
        x->throttled = true;
    return rc;
}

/* The guest acknowledged a suspend (shut down with reason suspend). */
static bool is_suspended(struct xen_hv *x)
{
    xc_domaininfo_t di;
    if (dominfo(x, x->domid, &di) < 0)
        return false;
    return (di.flags & XEN_DOMINF_shutdown) &&
           ((di.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask) == SHUTDOWN_suspend;
}

static int resume(struct mig__hv *hv);

static int suspend(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    uint64_t t0 = now_ms();
    int rc = from_libxl(libxl_domain_suspend_only(x->lx, x->domid, NULL));
    if (rc == 0 && now_ms() - t0 > x->suspend_timeout_s * 1000ull) {
        MIG_LOG(x->base.ctx, WARN, "suspend took %" PRIu64 " ms (limit %u s)", now_ms() - t0,
                x->suspend_timeout_s);
    }
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "domain %u: suspend failed (%s)", x->domid, mig_strerror(rc));
        /* Half a suspend must not leave the guest stopped: the engine resumes
         * only what it was told is suspended. */
        if (is_suspended(x)) {
            x->suspended = true;
            if (resume(hv) < 0)
                MIG_LOG(x->base.ctx, ERROR,
                        "domain %u: could not resume after the failed "
                        "suspend",
                        x->domid);
        }
        return rc;
    }
    x->suspended = true;
    MIG_LOG(x->base.ctx, INFO, "domain %u suspended in %" PRIu64 " ms", x->domid, now_ms() - t0);
    return 0;
}

static int rename_to(struct xen_hv *x, const char *new_name)
{
    if (strcmp(x->cur_name, new_name) == 0)
        return 0;
    int rc = from_libxl(libxl_domain_rename(x->lx, x->domid, x->cur_name, new_name));
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "cannot rename domain %u from %s to %s", x->domid, x->cur_name,
                new_name);
        return rc;
    }
    snprintf(x->cur_name, sizeof(x->cur_name), "%s", new_name);
    return 0;
}

static int resume(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    int rc = 0;
    /* Back under its own name first (xl does the same on failure). */
    int nrc = rename_to(x, x->name);
    if (x->suspended || is_suspended(x)) {
        rc = from_libxl(libxl_domain_resume(x->lx, x->domid, 1, NULL));
        if (rc < 0)
            MIG_LOG(x->base.ctx, ERROR, "domain %u: resume failed", x->domid);
        else
            x->suspended = false;
    }
    return rc < 0 ? rc : nrc;
}

static int xen_rename(struct mig__hv *hv, const char *new_name)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (x->base.role != MIG_ROLE_SOURCE || !new_name || !*new_name ||
        strlen(new_name) > NAME_MAX_LEN + 15)
        return -MIG_EINVAL;
    return rename_to(x, new_name);
}

static int destroy(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    char away[NAME_MAX_LEN + 16];
    if (x->destroyed)
        return 0;
    /* The engine renamed it NAME--migratedaway before COMMIT, as xl does;
     * a caller that did not (an image save, resolve) gets it here. */
    snprintf(away, sizeof(away), "%s" MIG_AWAY_SUFFIX, x->name);
    if (strcmp(x->cur_name, away) != 0)
        rename_to(x, away);
    logdirty_disable(hv);
    int rc = from_libxl(libxl_domain_destroy(x->lx, x->domid, NULL));
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "cannot destroy the source copy (domid %u)", x->domid);
        return rc;
    }
    x->destroyed = true;
    x->suspended = false;
    x->throttled = false; /* nothing left to restore */
    return 0;
}

/* ---- state blobs (source) --------------------------------------------- */

struct runs {
    uint8_t *buf; /* owned: {u64 pfn, u64 count}[] */
    size_t n, cap;
    uint64_t start, len; /* the open run */
};

static int runs_flush(struct runs *r)
{
    if (!r->len)
        return 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        uint8_t *p = realloc(r->buf, cap * 16);
        if (!p)
            return -MIG_ENOMEM;
        r->buf = p;
        r->cap = cap;
    }
    memcpy(r->buf + r->n * 16, &r->start, 8);
    memcpy(r->buf + r->n * 16 + 8, &r->len, 8);
    r->n++;
    r->len = 0;
    return 0;
}

/* Runs of pfns that do not map (holes), probed in batches of mappings that
 * are never touched. */
static int probe_holes(struct xen_hv *x, uint8_t **buf, size_t *len)
{
    xen_pfn_t arr[MIG_XS_MAX_BATCH];
    int err[MIG_XS_MAX_BATCH];
    struct runs r = {0};
    int rc = 0;
    free(x->src_holes);
    x->src_holes = calloc((x->nr_pfns + BITS_UL - 1) / BITS_UL, sizeof(unsigned long));
    if (!x->src_holes)
        return -MIG_ENOMEM;
    for (uint64_t base = 0; base < x->nr_pfns && rc == 0; base += MIG_XS_MAX_BATCH) {
        unsigned n =
            (unsigned)(x->nr_pfns - base < MIG_XS_MAX_BATCH ? x->nr_pfns - base : MIG_XS_MAX_BATCH);
        for (unsigned i = 0; i < n; i++)
            arr[i] = base + i;
        void *a = xenforeignmemory_map(x->fmem, x->domid, PROT_READ, n, arr, err);
        if (!a) {
            rc = from_xc(-1);
            MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot map pages to find holes", x->domid);
            break;
        }
        xenforeignmemory_unmap(x->fmem, a, n);
        for (unsigned i = 0; i < n && rc == 0; i++) {
            uint64_t pfn = base + i;
            if (err[i])
                x->src_holes[pfn / BITS_UL] |= 1ul << (pfn % BITS_UL);
            if (!err[i]) {
                rc = runs_flush(&r);
            } else if (r.len && r.start + r.len == pfn) {
                r.len++;
            } else {
                rc = runs_flush(&r);
                r.start = pfn;
                r.len = 1;
            }
        }
    }
    if (rc == 0)
        rc = runs_flush(&r);
    if (rc == 0)
        rc = mig__xs_append_record(buf, len, MIG_XS_PRIV_HOLES, r.buf, (uint32_t)(r.n * 16));
    free(r.buf);
    return rc;
}

static int save_setup(struct xen_hv *x, struct mig__blob *blob)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    xen_cpuid_leaf_t *leaves = NULL;
    xen_msr_entry_t *msrs = NULL;
    uint32_t nl = 0, nm = 0;
    int rc = mig__xs_append_record(&buf, &len, MIG_XS_PRIV_CONFIG, x->cfg_json,
                                   (uint32_t)strlen(x->cfg_json));
    if (rc == 0)
        rc = probe_holes(x, &buf, &len);
    if (rc == 0)
        rc = policy_of(x, -1, &leaves, &nl, &msrs, &nm);
    if (rc == 0 && nl)
        rc = mig__xs_append_record(&buf, &len, MIG_XS_X86_CPUID_POLICY, leaves,
                                   nl * (uint32_t)sizeof(*leaves));
    if (rc == 0 && nm)
        rc = mig__xs_append_record(&buf, &len, MIG_XS_X86_MSR_POLICY, msrs,
                                   nm * (uint32_t)sizeof(*msrs));
    free(leaves);
    free(msrs);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    blob->kind = MIG_XEN_BLOB_SETUP;
    blob->data = buf;
    blob->len = len;
    return 0;
}

static uint64_t xen_state_cost_ms(struct mig__hv *hv);

/* HVM: QEMU's xenstore keys and device state (xen-hvm.c) as private
 * records; the destination writes them as libxl's emulator records. */
static int save_emulator(struct xen_hv *x, uint8_t **buf, size_t *len)
{
    uint8_t *xs = NULL, *dm = NULL;
    uint32_t xs_len = 0, dm_len = 0;
    uint64_t ms = 0;
    int rc = mig__xen_hvm_xenstore_data(x->base.ctx, x->domid, &xs, &xs_len);
    if (rc == 0)
        rc = mig__xen_hvm_save_dm(x->base.ctx, x->domid, getenv("TMPDIR"), &dm, &dm_len, &ms);
    if (rc == 0) {
        MIG_LOG(x->base.ctx, INFO, "device model: save took %" PRIu64 " ms (predicted %" PRIu64
                " ms for save and restore)", ms, xen_state_cost_ms(&x->base));
        x->dm_save_ms = ms ? ms : 1;
    }
    if (rc == 0 && xs_len)
        rc = mig__xs_append_record(buf, len, MIG_XS_PRIV_EMU_XENSTORE, xs, xs_len);
    if (rc == 0)
        rc = mig__xs_append_record(buf, len, MIG_XS_PRIV_EMU_CONTEXT, dm, dm_len);
    free(xs);
    free(dm);
    return rc;
}

static int save_checkpoint(struct xen_hv *x, struct mig__blob *blob)
{
    uint8_t *buf = NULL, *ctxbuf = NULL;
    size_t len = 0;
    uint8_t tsc[24] = {0}, params[8 + 16 * (sizeof(hvm_params) / sizeof(hvm_params[0]))];
    uint32_t mode = 0, khz = 0, inc = 0, count = 0;
    uint64_t nsec = 0;
    int rc = -MIG_EBACKEND;

    if (xc_domain_get_tsc_info(x->xch, x->domid, &mode, &nsec, &khz, &inc) < 0) {
        MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot read TSC info", x->domid);
        goto out;
    }
    memcpy(tsc, &mode, 4);
    memcpy(tsc + 4, &khz, 4);
    memcpy(tsc + 8, &nsec, 8);
    memcpy(tsc + 16, &inc, 4);
    int size = xc_domain_hvm_getcontext(x->xch, x->domid, NULL, 0);
    if (size <= 0 || (uint32_t)size > mig__xs_max_len(MIG_XS_HVM_CONTEXT)) {
        MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot size the HVM context", x->domid);
        goto out;
    }
    ctxbuf = malloc((size_t)size);
    if (!ctxbuf) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    size = xc_domain_hvm_getcontext(x->xch, x->domid, ctxbuf, (uint32_t)size);
    if (size <= 0) {
        MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot read the HVM context", x->domid);
        goto out;
    }
    for (size_t i = 0; i < sizeof(hvm_params) / sizeof(hvm_params[0]); i++) {
        uint64_t v = 0, idx = hvm_params[i];
        if (xc_hvm_param_get(x->xch, x->domid, hvm_params[i], &v) < 0) {
            MIG_LOG(x->base.ctx, ERROR, "domain %u: cannot read HVM param %u", x->domid,
                    hvm_params[i]);
            goto out;
        }
        if (!v)
            continue;
        memcpy(params + 8 + 16 * count, &idx, 8);
        memcpy(params + 16 + 16 * count, &v, 8);
        count++;
    }
    memcpy(params, &count, 4);
    memset(params + 4, 0, 4);
    rc = mig__xs_append_record(&buf, &len, MIG_XS_X86_TSC_INFO, tsc, 24);
    if (rc == 0)
        rc = mig__xs_append_record(&buf, &len, MIG_XS_HVM_CONTEXT, ctxbuf, (uint32_t)size);
    if (rc == 0 && count)
        rc = mig__xs_append_record(&buf, &len, MIG_XS_HVM_PARAMS, params, 8 + 16 * count);
    if (rc == 0 && x->hvm)
        rc = save_emulator(x, &buf, &len);
    if (rc < 0)
        goto out;
    blob->kind = MIG_XEN_BLOB_CHECKPOINT;
    blob->data = buf;
    blob->len = len;
    buf = NULL;
out:
    free(buf);
    free(ctxbuf);
    return rc;
}

static int save_state(struct mig__hv *hv, struct mig__blob *blob_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    memset(blob_out, 0, sizeof(*blob_out));
    if (x->base.role != MIG_ROLE_SOURCE)
        return -MIG_EINVAL;
    return x->suspended ? save_checkpoint(x, blob_out) : save_setup(x, blob_out);
}

/* ---- destination ------------------------------------------------------ */

static int create_incoming(struct mig__hv *hv, const struct mig__dom_info *info)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    uint32_t other;
    if (x->base.role != MIG_ROLE_DESTINATION || x->have_info)
        return -MIG_EINVAL;
    if (!info->name[0] || strlen(info->name) > NAME_MAX_LEN || info->page_size != PAGE ||
        !info->nr_pages)
        return -MIG_EINVAL;
    x->info = *info;
    snprintf(x->incoming, sizeof(x->incoming), "%s--incoming", info->name);
    if (libxl_name_to_domid(x->lx, x->incoming, &other) == 0) {
        MIG_LOG(x->base.ctx, ERROR, "a domain %s already exists (domid %u)", x->incoming, other);
        return -MIG_EEXIST;
    }
    size_t words = (info->nr_pages + BITS_UL - 1) / BITS_UL;
    x->holes = calloc(words, sizeof(unsigned long));
    if (!x->holes)
        return -MIG_ENOMEM;
    x->have_info = true;
    return 0;
}

struct setup_parts {
    const uint8_t *json;
    uint32_t json_len;
    const uint8_t *cpuid, *msr;
    uint32_t cpuid_len, msr_len;
    const uint8_t *holes;
    uint32_t holes_len;
};

static int collect_setup(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                         uint32_t len)
{
    struct setup_parts *p = opaque;
    switch (type) {
    case MIG_XS_PRIV_CONFIG:
        p->json = body;
        p->json_len = len;
        break;
    case MIG_XS_PRIV_HOLES:
        p->holes = body;
        p->holes_len = len;
        break;
    case MIG_XS_X86_CPUID_POLICY:
        p->cpuid = body;
        p->cpuid_len = len;
        break;
    case MIG_XS_X86_MSR_POLICY:
        p->msr = body;
        p->msr_len = len;
        break;
    }
    return 0;
}

static void *restore_main(void *arg)
{
    struct xen_hv *x = arg;
    libxl_domain_restore_params params;
    uint32_t domid = NO_DOMID;
    libxl_domain_restore_params_init(&params);
    params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
    params.stream_version = 2;
    int r =
        libxl_domain_create_restore(x->lx, &x->dcfg, &domid, x->sock[1], -1, &params, NULL, NULL);
    libxl_domain_restore_params_dispose(&params);
    pthread_mutex_lock(&x->lock);
    x->restore_rc = from_libxl(r);
    x->new_domid = domid;
    x->thread_done = true;
    /* Our writer must not block on a reader that is gone. */
    close(x->sock[1]);
    x->sock[1] = -1;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* Free memory for need_kb, ballooning dom0 down as xl's autoballoon does
 * (target lowered by the shortfall, then wait for Xen to have it free). */
static int make_room(struct xen_hv *x, uint64_t need_kb, uint64_t *free_kb)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (libxl_get_free_memory(x->lx, free_kb))
            return -MIG_EBACKEND;
        if (*free_kb >= need_kb)
            return 0;
        if (!x->autoballoon)
            return -MIG_ENOSPC;
        MIG_LOG(x->base.ctx, INFO, "ballooning dom0 down by %" PRIu64 " MiB",
                (need_kb - *free_kb) >> 10);
        if (libxl_set_memory_target(x->lx, 0, (int64_t)*free_kb - (int64_t)need_kb, 1, 0))
            return -MIG_ENOSPC;
        int r = libxl_wait_for_free_memory(x->lx, 0, need_kb, 10);
        if (r == 0)
            return libxl_get_free_memory(x->lx, free_kb) ? -MIG_EBACKEND : 0;
        if (r != ERROR_NOMEM || libxl_wait_for_memory_target(x->lx, 0, 1) < 0)
            return -MIG_ENOSPC;
    }
    return -MIG_ENOSPC;
}

static int start_restore(struct xen_hv *x, const struct setup_parts *p)
{
    struct mig_ctx *ctx = x->base.ctx;
    char why[256] = "", *json = NULL;
    uint64_t need_kb = 0, free_kb = 0;
    int rc;

    json = strndup((const char *)p->json, p->json_len);
    if (!json)
        return -MIG_ENOMEM;
    libxl_domain_config_init(&x->dcfg);
    x->dcfg_init = true;
    rc = from_libxl(libxl_domain_config_from_json(x->lx, &x->dcfg, json));
    if (rc < 0) {
        free(json);
        MIG_LOG(ctx, ERROR, "the source's configuration does not parse");
        return -MIG_EPROTO;
    }
    /* The allow-list, before anything is built. */
    rc = mig__xen_config_sanitize(ctx, &x->rules, &x->dcfg, why, sizeof(why));
    if (rc == 0) {
        free(x->dcfg.c_info.name);
        x->dcfg.c_info.name = strdup(x->incoming);
        if (!x->dcfg.c_info.name)
            rc = -MIG_ENOMEM;
    }
    /* libxl_domain_need_memory fills libxl's defaults (an XSM ssidref among
     * them) into the configuration it is given: a second parse of it, or
     * the domain would be built, and its configuration stored, with them,
     * and its next migration refused by our own allow-list. */
    libxl_domain_config probe;
    libxl_domain_config_init(&probe);
    int nrc = rc < 0 ? 0 : libxl_domain_config_from_json(x->lx, &probe, json);
    if (rc == 0 && nrc == 0)
        nrc = libxl_domain_need_memory(x->lx, &probe, NO_DOMID, &need_kb);
    libxl_domain_config_dispose(&probe);
    free(json);
    if (rc < 0)
        return rc;
    if (nrc) {
        MIG_LOG(ctx, ERROR, "cannot compute the memory the domain needs");
        return -MIG_EBACKEND;
    }
    rc = make_room(x, need_kb, &free_kb);
    if (rc == -MIG_ENOSPC)
        MIG_LOG(ctx, ERROR,
                "not enough free memory: the domain needs %" PRIu64 " MiB, %" PRIu64 " MiB free%s",
                need_kb >> 10, free_kb >> 10,
                x->autoballoon ? " after ballooning dom0" : " (autoballoon=off)");
    if (rc < 0)
        return rc;
    for (uint32_t off = 0; off + 16 <= p->holes_len; off += 16) {
        uint64_t start, count;
        memcpy(&start, p->holes + off, 8);
        memcpy(&count, p->holes + off + 8, 8);
        for (uint64_t pfn = start; count && pfn < x->info.nr_pages && pfn - start < count; pfn++)
            x->holes[pfn / BITS_UL] |= 1ul << (pfn % BITS_UL);
    }
    /* No CLOEXEC on libxl's end: like xl's stdin, it is handed to libxl's
     * save helper. */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, x->sock) < 0)
        return mig__from_errno(errno);
    fcntl(x->sock[0], F_SETFD, FD_CLOEXEC);
    int sz = 4 << 20;
    setsockopt(x->sock[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    mig__xs_writer_init(&x->w, x->sock[0]);
    x->writer_init = true;
    if (pthread_create(&x->thread, NULL, restore_main, x) != 0) {
        close(x->sock[0]);
        close(x->sock[1]);
        x->sock[0] = x->sock[1] = -1;
        return -MIG_ENOMEM;
    }
    x->thread_live = true;
    int xv = xc_version(x->xch, XENVER_version, NULL);
    rc = mig__xs_write_head(&x->w, xv > 0 ? (uint32_t)xv >> 16 : 4, xv > 0 ? xv & 0xffff : 17,
                            p->cpuid, p->cpuid_len, p->msr, p->msr_len);
    if (rc < 0)
        MIG_LOG(ctx, ERROR, "writing the stream head to libxl: %s", mig_strerror(rc));
    MIG_LOG(ctx, INFO, "building %s through libxl_domain_create_restore", x->incoming);
    return rc;
}

static int load_setup(struct xen_hv *x, const struct mig__blob *blob)
{
    static const uint32_t allowed[] = {MIG_XS_PRIV_CONFIG, MIG_XS_PRIV_HOLES,
                                       MIG_XS_X86_CPUID_POLICY, MIG_XS_X86_MSR_POLICY};
    struct setup_parts p = {0};
    int rc;
    pthread_mutex_lock(&x->lock);
    bool again = x->started || x->start_err;
    pthread_mutex_unlock(&x->lock);
    if (!x->have_info || again)
        return -MIG_EPROTO;
    rc = mig__xs_parse_records(x->base.ctx, blob->data, blob->len, allowed, 4, collect_setup, &p);
    if (rc == 0 && !p.json) {
        MIG_LOG(x->base.ctx, ERROR, "setup state without a configuration");
        rc = -MIG_EPROTO;
    }
    if (rc == 0)
        rc = start_restore(x, &p);
    pthread_mutex_lock(&x->lock);
    if (rc == 0)
        x->started = true;
    else
        x->start_err = rc;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    return rc;
}

/* Block until the stream head is written (the setup blob arrived). */
static int wait_started(struct xen_hv *x)
{
    struct timespec dl;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += x->start_timeout_s;
    pthread_mutex_lock(&x->lock);
    while (!x->started && !x->start_err && rc == 0)
        rc = pthread_cond_timedwait(&x->cond, &x->lock, &dl);
    int out = x->started ? 0 : x->start_err ? -MIG_ECANCELLED : -MIG_ETIMEOUT;
    pthread_mutex_unlock(&x->lock);
    if (out == -MIG_ETIMEOUT)
        MIG_LOG(x->base.ctx, ERROR,
                "pages arrived but no setup state within %u s: the source must send "
                "save_state's setup blob before round 0 (docs/xen-stream.md)",
                x->start_timeout_s);
    return out;
}

/* A write into the stream failed: if libxl's restore stopped, say why. */
static int writer_failed(struct xen_hv *x, int rc)
{
    pthread_mutex_lock(&x->lock);
    bool done = x->thread_done;
    int rrc = x->restore_rc;
    pthread_mutex_unlock(&x->lock);
    if (done) {
        MIG_LOG(x->base.ctx, ERROR, "libxl stopped reading the stream: %s",
                mig_strerror(rrc < 0 ? rrc : -MIG_EPROTO));
        return rrc < 0 ? rrc : -MIG_EBACKEND;
    }
    return rc;
}

/* First sight of a source hole: leave it out. Atomic: channels race. */
static bool take_hole(struct xen_hv *x, uint64_t pfn)
{
    unsigned long bit = 1ul << (pfn % BITS_UL);
    unsigned long old = __atomic_fetch_and(&x->holes[pfn / BITS_UL], ~bit, __ATOMIC_RELAXED);
    return old & bit;
}

static int write_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void *data)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    int rc = wait_started(x);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        if (pfns[i] >= x->info.nr_pages)
            return -MIG_EPROTO;
        take_hole(x, pfns[i]); /* populated now */
    }
    for (unsigned off = 0; off < n && rc == 0; off += MIG_XS_MAX_BATCH) {
        unsigned k = n - off < MIG_XS_MAX_BATCH ? n - off : MIG_XS_MAX_BATCH;
        rc = mig__xs_write_pages(&x->w, pfns + off, k, (const uint8_t *)data + (size_t)off * PAGE);
    }
    return rc < 0 ? writer_failed(x, rc) : 0;
}

static int write_zero(struct mig__hv *hv, uint64_t pfn, uint64_t count)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    uint64_t batch[MIG_XS_MAX_BATCH];
    unsigned n = 0;
    int rc = wait_started(x);
    if (rc < 0)
        return rc;
    if (pfn >= x->info.nr_pages || count > x->info.nr_pages - pfn)
        return -MIG_EPROTO;
    for (uint64_t p = pfn; p < pfn + count && rc == 0; p++) {
        if (take_hole(x, p))
            continue;
        batch[n++] = p;
        if (n == MIG_XS_MAX_BATCH) {
            rc = mig__xs_write_zero_pages(&x->w, batch, n);
            n = 0;
        }
    }
    if (rc == 0 && n)
        rc = mig__xs_write_zero_pages(&x->w, batch, n);
    return rc < 0 ? writer_failed(x, rc) : 0;
}

struct tail_parts {
    const uint8_t *tsc, *ctx, *params;
    uint32_t ctx_len, params_len;
    bool bad_param;
    const uint8_t *emu_xs, *emu_dm; /* HVM: libxl's emulator record bodies */
    uint32_t emu_xs_len, emu_dm_len;
};

static int collect_tail(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                        uint32_t len)
{
    struct tail_parts *t = opaque;
    if (type == MIG_XS_PRIV_EMU_XENSTORE) {
        t->emu_xs = body;
        t->emu_xs_len = len;
    } else if (type == MIG_XS_PRIV_EMU_CONTEXT) {
        t->emu_dm = body;
        t->emu_dm_len = len;
    } else if (type == MIG_XS_X86_TSC_INFO) {
        t->tsc = body;
    } else if (type == MIG_XS_HVM_CONTEXT) {
        t->ctx = body;
        t->ctx_len = len;
    } else if (type == MIG_XS_HVM_PARAMS) {
        uint32_t count;
        memcpy(&count, body, 4);
        for (uint32_t i = 0; i < count; i++) {
            uint64_t idx;
            bool ok = false;
            memcpy(&idx, body + 8 + 16 * i, 8);
            for (size_t j = 0; j < sizeof(hvm_params) / sizeof(hvm_params[0]); j++)
                ok |= idx == hvm_params[j];
            if (!ok)
                t->bad_param = true;
        }
        t->params = body;
        t->params_len = len;
    }
    return 0;
}

static int load_checkpoint(struct xen_hv *x, const struct mig__blob *blob)
{
    static const uint32_t allowed[] = {MIG_XS_X86_TSC_INFO, MIG_XS_HVM_CONTEXT, MIG_XS_HVM_PARAMS,
                                       MIG_XS_PRIV_EMU_XENSTORE, MIG_XS_PRIV_EMU_CONTEXT};
    struct tail_parts t = {0};
    int rc =
        mig__xs_parse_records(x->base.ctx, blob->data, blob->len, allowed, 5, collect_tail, &t);
    if (rc < 0)
        return rc;
    /* An HVM domain's device model needs its state; a PVH one has none. */
    bool hvm = x->dcfg_init && x->dcfg.c_info.type == LIBXL_DOMAIN_TYPE_HVM;
    if (hvm != (t.emu_dm != NULL) || (!hvm && t.emu_xs)) {
        MIG_LOG(x->base.ctx, ERROR, "checkpoint state %s device-model state for a%s domain",
                t.emu_dm ? "carries" : "lacks", hvm ? "n HVM" : " PVH");
        return -MIG_EPROTO;
    }
    if (!t.tsc || !t.ctx || t.bad_param) {
        MIG_LOG(x->base.ctx, ERROR, "checkpoint state %s",
                t.bad_param ? "carries an HVM param outside the allow-list"
                            : "lacks TSC info or the HVM context");
        return -MIG_EPROTO;
    }
    rc = wait_started(x);
    if (rc < 0)
        return rc;
    if (x->tail_written)
        return -MIG_EPROTO;
    /* Xen 4.17's order: TSC info, HVM context, HVM params; then both ENDs. */
    rc = mig__xs_write_record(&x->w, MIG_XS_X86_TSC_INFO, t.tsc, 24);
    if (rc == 0)
        rc = mig__xs_write_record(&x->w, MIG_XS_HVM_CONTEXT, t.ctx, t.ctx_len);
    if (rc == 0 && t.params)
        rc = mig__xs_write_record(&x->w, MIG_XS_HVM_PARAMS, t.params, t.params_len);
    if (rc == 0)
        rc = hvm ? mig__xs_write_end_hvm(&x->w, t.emu_xs, t.emu_xs_len, t.emu_dm, t.emu_dm_len)
                 : mig__xs_write_end(&x->w);
    if (rc < 0)
        return writer_failed(x, rc);
    x->tail_written = true;
    x->t_end_ns = mig__now_ns();
    shutdown(x->sock[0], SHUT_WR);
    MIG_LOG(x->base.ctx, INFO, "stream to libxl complete: %" PRIu64 " pages, %" PRIu64 " MiB",
            x->w.pages, x->w.bytes >> 20);
    return 0;
}

static int load_state(struct mig__hv *hv, const struct mig__blob *blob)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (x->base.role != MIG_ROLE_DESTINATION)
        return -MIG_EINVAL;
    if (blob->kind == MIG_XEN_BLOB_SETUP)
        return load_setup(x, blob);
    if (blob->kind == MIG_XEN_BLOB_CHECKPOINT)
        return load_checkpoint(x, blob);
    MIG_LOG(x->base.ctx, ERROR, "unknown state blob kind %#x", blob->kind);
    return -MIG_EPROTO;
}

/* Wait for the restore thread (bounded); joins it. */
static int join_restore(struct xen_hv *x, unsigned timeout_s)
{
    struct timespec dl;
    int rc = 0;
    if (!x->thread_live)
        return 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_s;
    pthread_mutex_lock(&x->lock);
    while (!x->thread_done && rc == 0)
        rc = pthread_cond_timedwait(&x->cond, &x->lock, &dl);
    bool done = x->thread_done;
    pthread_mutex_unlock(&x->lock);
    if (!done)
        return -MIG_ETIMEOUT;
    pthread_join(x->thread, NULL);
    x->thread_live = false;
    return 0;
}

static int ready(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (!x->tail_written)
        return -MIG_ESTATE;
    int rc = join_restore(x, READY_TIMEOUT_S);
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "libxl did not finish the restore within %u s",
                READY_TIMEOUT_S);
        return rc;
    }
    if (x->restore_rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "libxl could not build %s: %s", x->incoming,
                mig_strerror(x->restore_rc));
        return x->restore_rc;
    }
    x->built = true;
    MIG_LOG(x->base.ctx, INFO, "%s built (domid %u), paused; device attach took %" PRIu64 " ms",
            x->incoming, x->new_domid, (mig__now_ns() - x->t_end_ns) / 1000000u);
    return 0;
}

static int commit(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    if (!x->built)
        return -MIG_ESTATE;
    int rc = from_libxl(libxl_domain_rename(x->lx, x->new_domid, x->incoming, x->info.name));
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "cannot rename %s to %s", x->incoming, x->info.name);
        return rc;
    }
    rc = from_libxl(libxl_domain_unpause(x->lx, x->new_domid, NULL));
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "cannot unpause %s (domid %u)", x->info.name, x->new_domid);
        libxl_domain_rename(x->lx, x->new_domid, x->info.name, x->incoming);
        return rc;
    }
    x->committed = true;
    return 0;
}

/* Our end of the stream, closed under the writer's lock with a sticky
 * error first, so a late write_pages never writes into a reused fd. */
static void close_writer(struct xen_hv *x)
{
    if (x->sock[0] < 0)
        return;
    if (x->writer_init) {
        pthread_mutex_lock(&x->w.lock);
        if (!x->w.err)
            x->w.err = -MIG_ECANCELLED;
        close(x->sock[0]);
        x->sock[0] = -1;
        pthread_mutex_unlock(&x->w.lock);
    } else {
        close(x->sock[0]);
        x->sock[0] = -1;
    }
}

static int discard(struct mig__hv *hv)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    uint32_t stray;
    int rc = 0;
    if (x->base.role != MIG_ROLE_DESTINATION || x->committed)
        return 0;
    /* Stop feeding libxl: its restore fails and it destroys what it built. */
    if (x->sock[0] >= 0)
        shutdown(x->sock[0], SHUT_RDWR);
    pthread_mutex_lock(&x->lock);
    if (!x->started && !x->start_err)
        x->start_err = -MIG_ECANCELLED;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    if (join_restore(x, READY_TIMEOUT_S) < 0)
        MIG_LOG(x->base.ctx, ERROR, "libxl's restore does not stop; %s may be left", x->incoming);
    close_writer(x);
    if (x->thread_done && x->restore_rc == 0 && x->new_domid != NO_DOMID && !x->thread_live) {
        rc = from_libxl(libxl_domain_destroy(x->lx, x->new_domid, NULL));
        if (rc < 0)
            MIG_LOG(x->base.ctx, ERROR, "cannot destroy %s (domid %u)", x->incoming, x->new_domid);
        else
            x->restore_rc = -MIG_ECANCELLED; /* nothing left */
    }
    /* Whatever libxl left under the incoming name goes too. */
    if (x->have_info && libxl_name_to_domid(x->lx, x->incoming, &stray) == 0) {
        int r2 = from_libxl(libxl_domain_destroy(x->lx, stray, NULL));
        if (r2 < 0)
            rc = r2;
    }
    x->built = false;
    return rc;
}

/* A receiver that died before COMMIT left NAME--incoming (libxl built it,
 * nobody discarded it): destroy it. The final name is never touched. */
static int reap(struct mig__hv *hv, const char *name, bool *found_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    char incoming[NAME_MAX_LEN + 16];
    uint32_t domid;
    *found_out = false;
    if (!name || !*name || strlen(name) > NAME_MAX_LEN)
        return -MIG_EINVAL;
    snprintf(incoming, sizeof(incoming), "%s--incoming", name);
    if (libxl_name_to_domid(x->lx, incoming, &domid) != 0)
        return 0;
    int rc = from_libxl(libxl_domain_destroy(x->lx, domid, NULL));
    if (rc < 0) {
        MIG_LOG(x->base.ctx, ERROR, "cannot destroy the leftover %s (domid %u)", incoming, domid);
        return rc;
    }
    *found_out = true;
    return 0;
}

/* Resolve after a crash between COMMIT and its record: the final name
 * means the commit happened (xl renames before it unpauses); an incoming
 * domain left over is destroyed. */
static int probe(struct mig__hv *hv, const char *name, enum mig__probe *state_out)
{
    struct xen_hv *x = (struct xen_hv *)hv;
    uint32_t domid;
    *state_out = MIG_PROBE_ABSENT;
    if (!name || !*name || strlen(name) > NAME_MAX_LEN)
        return -MIG_EINVAL;
    if (libxl_name_to_domid(x->lx, name, &domid) == 0) {
        xc_domaininfo_t di;
        /* Renamed but not unpaused yet: the commit was decided, finish it. */
        if (dominfo(x, domid, &di) == 0 && (di.flags & XEN_DOMINF_paused)) {
            int rc = from_libxl(libxl_domain_unpause(x->lx, domid, NULL));
            if (rc < 0) {
                MIG_LOG(x->base.ctx, ERROR, "%s (domid %u) is paused and cannot be unpaused", name,
                        domid);
                return rc;
            }
            MIG_LOG(x->base.ctx, INFO, "%s was committed but still paused: unpaused", name);
        }
        *state_out = MIG_PROBE_RUNNING;
        return 0;
    }
    bool found = false;
    int rc = reap(hv, name, &found);
    if (rc == 0 && found)
        *state_out = MIG_PROBE_DISCARDED;
    return rc;
}

const struct mig__hv_ops mig__hv_xen_ops = {
    .name = "xen",
    .setup_state = true, /* the configuration and CPU policy go first */
    .open = xen_open,
    .close = xen_close,
    .facts = xen_facts,
    .info = xen_info,
    .vifs = xen_vifs,
    .tracking = xen_tracking,
    .state_cost_ms = xen_state_cost_ms,
    .logdirty_enable = logdirty_enable,
    .logdirty_clean = logdirty_clean,
    .logdirty_disable = logdirty_disable,
    .map_pages = map_pages,
    .unmap_pages = unmap_pages,
    .throttle = throttle,
    .suspend = suspend,
    .resume = resume,
    .save_state = save_state,
    .rename = xen_rename,
    .destroy = destroy,
    .create_incoming = create_incoming,
    .write_pages = write_pages,
    .write_zero = write_zero,
    .load_state = load_state,
    .ready = ready,
    .commit = commit,
    .discard = discard,
    .probe = probe,
    .reap = reap,
};
