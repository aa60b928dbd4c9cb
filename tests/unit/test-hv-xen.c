/*
 * Unit tests for the xen: backend (xen.c, xen-config.c) with every Xen entry
 * point replaced at link time (-Wl,--wrap=..., list in libmig/src/hv/xen.am)
 * by a small fake hypervisor below: one PVH domain with memory, holes, a
 * log-dirty bitmap, a scheduler cap, a run state and a name; a destination
 * whose "libxl restore" parses the stream with the real parser and keeps the
 * pages it receives. The tests drive the ops the way the engine does
 * (source.c, dest.c) and check the fake's state afterwards - behaviour, not
 * call order: log-dirty off, the admin's cap back, the guest running (or
 * left paused when in doubt), the incoming domain gone.
 */
#include <config.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <libmig/image.h>
#include <libmig/migrate.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <libxl.h>
#include <libxl_utils.h>

#include "hv-provider.h"
#include "xen-internal.h"
#include "hooks.h"
#include "xen-stream.h"
#include "../profile/profile-internal.h"

#pragma GCC diagnostic ignored "-Wmissing-prototypes"

extern const struct mig__hv_ops mig__hv_xen_ops;
static const struct mig__hv_ops *ops = &mig__hv_xen_ops;

#define NR_PFNS    300u
#define SRC_DOMID  7u
#define NEW_DOMID  42u
#define HOLE_START 100u
#define HOLE_END   110u
#define ADMIN_CAP  150

/* ---- the fake hypervisor --------------------------------------------- */

enum run { RUNNING, SUSPENDED, GONE };

static struct fake {
    /* source domain */
    bool hvm, pvh;
    int hvm_pcidevs;  /* !pvh: pci= passthrough in the HVM configuration */
    bool hvm_nested;  /* !pvh: nestedhvm=1 */
    enum run run;
    char name[80];
    int cap; /* current scheduler cap */
    bool logdirty;
    unsigned long dirty[(NR_PFNS + 63) / 64 + 1];
    uint8_t mem[NR_PFNS][64]; /* the first bytes of each page (rest: pfn pattern) */
    int mappings;             /* outstanding */
    uint64_t mapped[4096];
    unsigned nmapped;
    unsigned nmapped_at_suspend; /* how many of mapped[] came before the suspend */
    int hbuf_allocs;
    /* failure injection */
    bool fail_map, fail_clean;
    unsigned map_delay_once_ms; /* the next map sleeps that long (a slow probe) */
    int suspend_rc; /* libxl rc to return */
    bool suspend_leaves_suspended;
    unsigned resumes, destroys;
    /* destination */
    bool incoming_exists;
    char incoming_name[80];
    bool incoming_paused;
    int restore_calls;
    int restore_fail;           /* libxl rc after reading the stream */
    bool restore_leaves_domain; /* on failure, unlike libxl, leave it */
    int stream_rc;              /* what the parser said */
    uint64_t pages_received;
    uint8_t dmem[NR_PFNS]; /* first byte of each page received */
    bool dpopulated[NR_PFNS];
    char cfg_disk[128], cfg_bridge[64], cfg_name[80];
    uint32_t cfg_ssidref; /* what the restore was given */
    uint64_t need_kb, free_kb, dom0_spare_kb;
    unsigned balloons;
    int need_calls;
    int hostile; /* which configuration from_json produces */
} F;

static char dummy_xch, dummy_fmem, dummy_ctx;

static void fake_reset(void)
{
    memset(&F, 0, sizeof(F));
    F.hvm = F.pvh = true;
    F.run = RUNNING;
    snprintf(F.name, sizeof(F.name), "web");
    F.cap = ADMIN_CAP;
    F.need_kb = 1 << 20;
    F.free_kb = 8 << 20;
    for (unsigned p = 0; p < NR_PFNS; p++)
        memset(F.mem[p], (int)(p & 0xff) | 1, sizeof(F.mem[p]));
}

static void page_content(uint64_t pfn, uint8_t *dst)
{
    memset(dst, (int)(pfn & 0xff) | 1, 4096);
    memcpy(dst, F.mem[pfn], sizeof(F.mem[pfn]));
}

int __wrap_libxl_ctx_alloc(libxl_ctx **pctx, int version, unsigned flags, xentoollog_logger *lg)
{
    *pctx = (libxl_ctx *)&dummy_ctx;
    return 0;
}
int __wrap_libxl_ctx_free(libxl_ctx *ctx)
{
    return 0;
}
void __wrap_libxl_childproc_setmode(libxl_ctx *ctx, const libxl_childproc_hooks *h, void *u)
{
}
xc_interface *__wrap_xc_interface_open(xentoollog_logger *l, xentoollog_logger *d, unsigned f)
{
    return (xc_interface *)&dummy_xch;
}
int __wrap_xc_interface_close(xc_interface *xch)
{
    return 0;
}
xenforeignmemory_handle *__wrap_xenforeignmemory_open(xentoollog_logger *l, unsigned f)
{
    return (xenforeignmemory_handle *)&dummy_fmem;
}
int __wrap_xenforeignmemory_close(xenforeignmemory_handle *h)
{
    return 0;
}

void *__wrap_xenforeignmemory_map(xenforeignmemory_handle *h, uint32_t dom, int prot, size_t pages,
                                  const xen_pfn_t arr[], int err[])
{
    if (F.fail_map || dom != SRC_DOMID) {
        errno = EFAULT;
        return NULL;
    }
    if (F.map_delay_once_ms) {
        usleep(F.map_delay_once_ms * 1000u);
        F.map_delay_once_ms = 0;
    }
    uint8_t *m = calloc(pages, 4096);
    for (size_t i = 0; i < pages; i++) {
        bool hole = arr[i] >= HOLE_START && arr[i] < HOLE_END;
        err[i] = hole ? -EINVAL : 0;
        if (!hole && arr[i] < NR_PFNS)
            page_content(arr[i], m + i * 4096);
        if (F.nmapped < 4096)
            F.mapped[F.nmapped++] = arr[i];
    }
    F.mappings++;
    return m;
}
int __wrap_xenforeignmemory_unmap(xenforeignmemory_handle *h, void *addr, size_t pages)
{
    F.mappings--;
    free(addr);
    return 0;
}

int __wrap_libxl_name_to_domid(libxl_ctx *ctx, const char *name, uint32_t *domid)
{
    if (F.run != GONE && strcmp(name, F.name) == 0) {
        *domid = SRC_DOMID;
        return 0;
    }
    if (F.incoming_exists && strcmp(name, F.incoming_name) == 0) {
        *domid = NEW_DOMID;
        return 0;
    }
    return ERROR_INVAL;
}

#define WEB_UUID "5f0d3a4e-1b2c-4d5e-8f90-0a1b2c3d4e5f"

libxl_dominfo *__wrap_libxl_list_domain(libxl_ctx *ctx, int *n)
{
    libxl_dominfo *l = calloc(2, sizeof(*l));
    libxl_dominfo_init(&l[0]);
    libxl_dominfo_init(&l[1]);
    l[1].domid = SRC_DOMID;
    libxl_uuid_from_string(&l[1].uuid, WEB_UUID);
    *n = 2;
    return l;
}

int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first, unsigned int max,
                                 xc_domaininfo_t *info)
{
    memset(info, 0, sizeof(*info));
    if (first == NEW_DOMID && F.incoming_exists) {
        info->domain = NEW_DOMID;
        info->flags = XEN_DOMINF_hvm_guest | (F.incoming_paused ? XEN_DOMINF_paused : 0);
        return 1;
    }
    if (first != SRC_DOMID || F.run == GONE)
        return 0;
    info->domain = SRC_DOMID;
    info->flags = (F.hvm ? XEN_DOMINF_hvm_guest : 0);
    if (F.run == SUSPENDED)
        info->flags |= XEN_DOMINF_shutdown | (SHUTDOWN_suspend << XEN_DOMINF_shutdownshift);
    return 1;
}

static char *xdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void add_disk(libxl_domain_config *c, const char *path, const char *script)
{
    c->disks = realloc(c->disks, sizeof(*c->disks) * (size_t)(c->num_disks + 1));
    libxl_device_disk *d = &c->disks[c->num_disks++];
    libxl_device_disk_init(d);
    d->pdev_path = xdup(path);
    d->vdev = xdup("xvda");
    d->script = xdup(script);
}

static void add_nic(libxl_domain_config *c, const char *bridge)
{
    c->nics = realloc(c->nics, sizeof(*c->nics) * (size_t)(c->num_nics + 1));
    libxl_device_nic *n = &c->nics[c->num_nics++];
    libxl_device_nic_init(n);
    n->bridge = xdup(bridge);
    n->devid = c->num_nics - 1;
    static const uint8_t mac[6] = {0x00, 0x16, 0x3e, 0x12, 0x34, 0x56};
    memcpy(n->mac, mac, 6);
    n->mac[5] = (uint8_t)(n->mac[5] + n->devid);
    n->ip = xdup("10.0.0.5");
}

/* The source's configuration: PVH, 2 vCPUs, one disk, one vif. */
static void fill_config(libxl_domain_config *c, const char *name)
{
    libxl_domain_build_info_init_type(&c->b_info, LIBXL_DOMAIN_TYPE_PVH);
    c->c_info.type = LIBXL_DOMAIN_TYPE_PVH;
    c->c_info.name = xdup(name);
    c->b_info.max_vcpus = 2;
    c->b_info.max_memkb = c->b_info.target_memkb = 1200;
    c->b_info.kernel = xdup("/var/lib/xen/boot/vmlinuz");
    add_disk(c, "/dev/vg/web", NULL);
    add_nic(c, "xenbr0");
}

int __wrap_libxl_retrieve_domain_configuration(libxl_ctx *ctx, uint32_t domid,
                                               libxl_domain_config *c, const libxl_asyncop_how *how)
{
    if (!F.pvh) {
        libxl_domain_build_info_init_type(&c->b_info, LIBXL_DOMAIN_TYPE_HVM);
        c->c_info.type = LIBXL_DOMAIN_TYPE_HVM;
        c->c_info.name = xdup(F.name);
        if (F.hvm_pcidevs) {
            c->pcidevs = calloc((size_t)F.hvm_pcidevs, sizeof(*c->pcidevs));
            c->num_pcidevs = F.hvm_pcidevs;
            for (int i = 0; i < F.hvm_pcidevs; i++)
                libxl_device_pci_init(&c->pcidevs[i]);
        }
        libxl_defbool_set(&c->b_info.nested_hvm, F.hvm_nested);
        return 0;
    }
    fill_config(c, F.name);
    return 0;
}
char *__wrap_libxl_domain_config_to_json(libxl_ctx *ctx, libxl_domain_config *p)
{
    /* the cap in force when the configuration is serialised */
    char buf[128];
    snprintf(buf, sizeof(buf),
             "{\"c_info\":{\"type\":\"pvh\",\"name\":\"web\"},\"b_info\":{\"sched_params\":"
             "{\"cap\":%d}}}",
             F.cap);
    return strdup(buf);
}

/* The destination's "JSON parser": what the hostile tests choose. */
int __wrap_libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *c, const char *s)
{
    fill_config(c, "web");
    switch (F.hostile) {
    case 1:
        free(c->disks[0].script);
        c->disks[0].script = xdup("/tmp/evil-block-script");
        break;
    case 2:
        c->b_info.device_model = xdup("/tmp/evil-qemu");
        break;
    case 3:
        add_disk(c, "/etc/shadow", NULL);
        break;
    case 4:
        c->b_info.bootloader = xdup("/tmp/evil-pygrub");
        break;
    case 5:
        free(c->nics[0].bridge);
        c->nics[0].bridge = xdup("br-secret");
        break;
    }
    return 0;
}

int __wrap_xc_domain_nr_gpfns(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
    *gpfns = NR_PFNS;
    return 0;
}

int __wrap_libxl_domain_sched_params_get(libxl_ctx *ctx, uint32_t domid,
                                         libxl_domain_sched_params *p)
{
    p->sched = LIBXL_SCHEDULER_CREDIT2;
    p->cap = F.cap;
    p->weight = 256;
    return 0;
}
int __wrap_libxl_domain_sched_params_set(libxl_ctx *ctx, uint32_t domid,
                                         const libxl_domain_sched_params *p)
{
    if (p->cap != LIBXL_DOMAIN_SCHED_PARAM_CAP_DEFAULT)
        F.cap = p->cap;
    return 0;
}

void *__wrap_xc__hypercall_buffer_alloc_pages(xc_interface *xch, xc_hypercall_buffer_t *b, int nr)
{
    b->hbuf = calloc((size_t)nr, 4096);
    F.hbuf_allocs++;
    return b->hbuf;
}
void __wrap_xc__hypercall_buffer_free_pages(xc_interface *xch, xc_hypercall_buffer_t *b, int nr)
{
    free(b->hbuf);
    b->hbuf = NULL;
    F.hbuf_allocs--;
}

int __wrap_xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop, unsigned int *mb,
                             unsigned int mode)
{
    if (sop == XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY)
        F.logdirty = true;
    else if (sop == XEN_DOMCTL_SHADOW_OP_OFF)
        F.logdirty = false;
    return 0;
}

long long __wrap_xc_logdirty_control(xc_interface *xch, uint32_t domid, unsigned int sop,
                                     xc_hypercall_buffer_t *bm, unsigned long pages,
                                     unsigned int mode, xc_shadow_op_stats_t *stats)
{
    if (F.fail_clean || !F.logdirty || sop != XEN_DOMCTL_SHADOW_OP_CLEAN) {
        errno = EIO;
        return -1;
    }
    /* Xen copies the whole words, bits past 'pages' included. */
    memcpy(bm->hbuf, F.dirty, (pages + 63) / 64 * sizeof(unsigned long));
    memset(F.dirty, 0, sizeof(F.dirty));
    return (long long)pages;
}

int __wrap_libxl_domain_suspend_only(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how)
{
    if (F.suspend_rc) {
        if (F.suspend_leaves_suspended)
            F.run = SUSPENDED;
        return F.suspend_rc;
    }
    F.run = SUSPENDED;
    F.nmapped_at_suspend = F.nmapped;
    return 0;
}
int __wrap_libxl_domain_resume(libxl_ctx *ctx, uint32_t domid, int fast,
                               const libxl_asyncop_how *how)
{
    F.resumes++;
    F.run = RUNNING;
    return 0;
}
int __wrap_libxl_domain_rename(libxl_ctx *ctx, uint32_t domid, const char *old_name,
                               const char *new_name)
{
    if (domid == SRC_DOMID) {
        if (old_name && strcmp(old_name, F.name))
            return ERROR_INVAL;
        snprintf(F.name, sizeof(F.name), "%s", new_name);
        return 0;
    }
    if (domid == NEW_DOMID && F.incoming_exists) {
        if (old_name && strcmp(old_name, F.incoming_name))
            return ERROR_INVAL;
        snprintf(F.incoming_name, sizeof(F.incoming_name), "%s", new_name);
        return 0;
    }
    return ERROR_INVAL;
}
int __wrap_libxl_domain_destroy(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how)
{
    F.destroys++;
    if (domid == SRC_DOMID)
        F.run = GONE;
    else if (domid == NEW_DOMID)
        F.incoming_exists = false;
    else
        return ERROR_INVAL;
    return 0;
}
int __wrap_libxl_domain_unpause(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how)
{
    if (domid != NEW_DOMID || !F.incoming_exists)
        return ERROR_INVAL;
    F.incoming_paused = false;
    return 0;
}

static uint8_t dummy_policy;
int __wrap_xc_cpu_policy_get_size(xc_interface *xch, uint32_t *nl, uint32_t *nm)
{
    *nl = 2;
    *nm = 1;
    return 0;
}
xc_cpu_policy_t *__wrap_xc_cpu_policy_init(void)
{
    return (xc_cpu_policy_t *)&dummy_policy;
}
void __wrap_xc_cpu_policy_destroy(xc_cpu_policy_t *p)
{
}
static bool system_policy; /* which policy the next serialise gives */
int __wrap_xc_cpu_policy_get_domain(xc_interface *xch, uint32_t domid, xc_cpu_policy_t *p)
{
    system_policy = false;
    return 0;
}
int __wrap_xc_cpu_policy_get_system(xc_interface *xch, unsigned idx, xc_cpu_policy_t *p)
{
    system_policy = true;
    return idx == XEN_SYSCTL_cpu_policy_hvm_max ? 0 : -1;
}
int __wrap_xc_cpu_policy_serialise(xc_interface *xch, const xc_cpu_policy_t *p,
                                   xen_cpuid_leaf_t *leaves, uint32_t *nl, xen_msr_entry_t *msrs,
                                   uint32_t *nm)
{
    memset(leaves, 0, sizeof(*leaves) * 2);
    leaves[0].leaf = 0;
    leaves[1].leaf = 1;
    leaves[1].d = 1u << 0 | 1u << 4; /* fpu, tsc */
    leaves[1].c = 1u << 31;          /* hypervisor */
    if (system_policy) {
        leaves[0].leaf = 7;
        leaves[0].subleaf = 0;
        leaves[0].b = 1u << 5; /* avx2 */
    }
    memset(msrs, 0, sizeof(*msrs));
    msrs[0].idx = 0xce;
    *nl = 2;
    *nm = 1;
    return 0;
}
int __wrap_xc_domain_get_tsc_info(xc_interface *xch, uint32_t domid, uint32_t *mode, uint64_t *nsec,
                                  uint32_t *khz, uint32_t *inc)
{
    *mode = 0;
    *nsec = 123;
    *khz = 2000000;
    *inc = 1;
    return 0;
}
int __wrap_xc_domain_hvm_getcontext(xc_interface *xch, uint32_t domid, uint8_t *buf, uint32_t size)
{
    if (buf)
        memset(buf, 0xcc, size);
    return 512;
}
int __wrap_xc_hvm_param_get(xc_interface *xch, uint32_t domid, uint32_t param, uint64_t *v)
{
    *v = param == HVM_PARAM_STORE_PFN ? 0xfeffc : param == HVM_PARAM_CONSOLE_PFN ? 0xfefff : 0;
    return 0;
}

int __wrap_libxl_domain_need_memory(libxl_ctx *ctx, libxl_domain_config *c, uint32_t domid,
                                    uint64_t *need)
{
    F.need_calls++;
    *need = F.need_kb;
    /* as libxl's does: its defaults go into the configuration */
    c->c_info.ssidref = 12;
    return 0;
}
int __wrap_libxl_get_free_memory(libxl_ctx *ctx, uint64_t *memkb)
{
    *memkb = F.free_kb;
    return 0;
}
/* dom0 can give back up to F.dom0_spare_kb */
int __wrap_libxl_set_memory_target(libxl_ctx *ctx, uint32_t domid, int64_t target, int relative,
                                   int enforce)
{
    if (domid != 0 || !relative || target >= 0)
        return ERROR_INVAL;
    uint64_t give = (uint64_t)-target < F.dom0_spare_kb ? (uint64_t)-target : F.dom0_spare_kb;
    F.dom0_spare_kb -= give;
    F.free_kb += give;
    F.balloons++;
    return 0;
}
int __wrap_libxl_wait_for_free_memory(libxl_ctx *ctx, uint32_t domid, uint64_t kb, int secs)
{
    return F.free_kb >= kb ? 0 : ERROR_NOMEM;
}
int __wrap_libxl_wait_for_memory_target(libxl_ctx *ctx, uint32_t domid, int secs)
{
    return 0;
}

static int dest_visit(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                      uint32_t len)
{
    if (layer != MIG_XS_LAYER_LIBXC || type != MIG_XS_PAGE_DATA)
        return 0;
    uint32_t count;
    memcpy(&count, body, 4);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t pfn;
        memcpy(&pfn, body + 8 + 8 * i, 8);
        if (pfn < NR_PFNS) {
            F.dmem[pfn] = body[8 + 8 * count + 4096 * i + 100];
            F.dpopulated[pfn] = true;
        }
        F.pages_received++;
    }
    return 0;
}

/* libxl: build the domain, read the whole stream, attach devices. */
int __wrap_libxl_domain_create_restore(libxl_ctx *ctx, libxl_domain_config *c, uint32_t *domid,
                                       int fd, int send_back_fd,
                                       const libxl_domain_restore_params *params,
                                       const libxl_asyncop_how *how,
                                       const libxl_asyncprogress_how *aop)
{
    F.restore_calls++;
    snprintf(F.cfg_name, sizeof(F.cfg_name), "%s", c->c_info.name);
    snprintf(F.cfg_disk, sizeof(F.cfg_disk), "%s", c->num_disks ? c->disks[0].pdev_path : "");
    snprintf(F.cfg_bridge, sizeof(F.cfg_bridge), "%s", c->num_nics ? c->nics[0].bridge : "");
    snprintf(F.incoming_name, sizeof(F.incoming_name), "%s", c->c_info.name);
    F.cfg_ssidref = c->c_info.ssidref;
    F.incoming_exists = true;
    F.incoming_paused = true;
    *domid = NEW_DOMID;
    F.stream_rc = mig__xs_parse_stream(NULL, fd, dest_visit, NULL, NULL);
    if (F.stream_rc < 0 || F.restore_fail) {
        if (!F.restore_leaves_domain)
            F.incoming_exists = false; /* libxl destroys what it built */
        return F.restore_fail ? F.restore_fail : ERROR_FAIL;
    }
    return 0;
}

int __wrap_xc_version(xc_interface *xch, int cmd, void *arg)
{
    if (cmd == XENVER_extraversion)
        snprintf(arg, sizeof(xen_extraversion_t), ".0");
    return 4 << 16 | 17;
}
int __wrap_libxl_get_physinfo(libxl_ctx *ctx, libxl_physinfo *pi)
{
    pi->cap_hvm = pi->cap_hap = true;
    pi->total_pages = 1 << 20;
    pi->free_pages = 1 << 19;
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static struct mig_ctx *mctx;

static int setup(void **state)
{
    fake_reset();
    assert_int_equal(mig_ctx_new(&mctx), 0);
    return 0;
}
static int teardown(void **state)
{
    mig_ctx_free(mctx);
    mctx = NULL;
    assert_int_equal(F.mappings, 0);
    assert_int_equal(F.hbuf_allocs, 0);
    return 0;
}

static struct mig__hv *open_src(void)
{
    struct mig__hv *hv = NULL;
    assert_int_equal(ops->open(mctx, "web", MIG_ROLE_SOURCE, &hv), 0);
    return hv;
}

static void set_dirty(uint64_t pfn)
{
    F.dirty[pfn / 64] |= 1ul << (pfn % 64);
}

/* The engine's collect_dirty(): caller-zeroed bitmap, pfns in order. */
static unsigned collect(struct mig__hv *hv, uint64_t *pfns, int *rc_out)
{
    unsigned long bm[(NR_PFNS + 63) / 64] = {0};
    uint64_t nd = 0;
    unsigned n = 0;
    *rc_out = ops->logdirty_clean(hv, bm, &nd);
    for (uint64_t p = 0; p < NR_PFNS; p++)
        if (bm[p / 64] & (1ul << (p % 64)))
            pfns[n++] = p;
    if (*rc_out == 0)
        assert_int_equal(nd, n);
    return n;
}

/* The engine's send_batch(): map, read every page, unmap. */
static int send_batch(struct mig__hv *hv, const uint64_t *pfns, unsigned n)
{
    const void *ptrs[1024];
    struct mig__hv_map *map = NULL;
    int rc = ops->map_pages(hv, pfns, n, ptrs, &map);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = ptrs[i];
        if (pfns[i] >= HOLE_START && pfns[i] < HOLE_END)
            assert_int_equal(p[100], 0);
        else
            assert_int_equal(p[100], (pfns[i] & 0xff) | 1);
    }
    ops->unmap_pages(hv, map);
    return 0;
}

/* The engine's rollback() before COMMIT, then mig_session_free(). */
static void rollback_and_close(struct mig__hv *hv, bool suspended)
{
    if (suspended)
        assert_int_equal(ops->resume(hv), 0);
    ops->throttle(hv, 0);
    ops->logdirty_disable(hv);
    ops->close(hv);
}

static void assert_source_restored(void)
{
    assert_false(F.logdirty);
    assert_int_equal(F.cap, ADMIN_CAP);
    assert_int_equal(F.run, RUNNING);
    assert_string_equal(F.name, "web");
    assert_int_equal(F.mappings, 0);
}

/* ---- source ----------------------------------------------------------- */

static void test_open_refuses_pv_and_hvm(void **state)
{
    struct mig__hv *hv = NULL;
    F.hvm = false;
    assert_int_equal(ops->open(mctx, "web", MIG_ROLE_SOURCE, &hv), -MIG_ENOTSUP);
    assert_null(hv);
    F.hvm = true;
    F.pvh = false;
    /* HVM opens (its device model is reached only from round 0 on) ... */
    assert_int_equal(ops->open(mctx, "7", MIG_ROLE_SOURCE, &hv), 0);
    /* its device model's save + restore is in the downtime prediction */
    assert_int_equal(ops->state_cost_ms(hv), 20 + 150);
    ops->close(hv);
    hv = NULL;
    /* ... but passthrough and nested HVM are refused before round 0 */
    F.hvm_pcidevs = 1;
    assert_int_equal(ops->open(mctx, "7", MIG_ROLE_SOURCE, &hv), -MIG_ENOTSUP);
    assert_null(hv);
    F.hvm_pcidevs = 0;
    F.hvm_nested = true;
    assert_int_equal(ops->open(mctx, "7", MIG_ROLE_SOURCE, &hv), -MIG_ENOTSUP);
    assert_null(hv);
    F.hvm_nested = false;
    assert_int_equal(ops->open(mctx, "nosuch", MIG_ROLE_SOURCE, &hv), -MIG_ENOENT);
    assert_int_equal(ops->open(mctx, "web,bogus=1", MIG_ROLE_SOURCE, &hv), -MIG_EINVAL);
    assert_int_equal(ops->open(mctx, "0", MIG_ROLE_SOURCE, &hv), -MIG_EINVAL);
}

static void test_info_by_id(void **state)
{
    struct mig__hv *hv = NULL;
    struct mig__dom_info info;
    assert_int_equal(ops->open(mctx, WEB_UUID, MIG_ROLE_SOURCE, &hv), 0);
    assert_int_equal(ops->state_cost_ms(hv), 0); /* PVH: no device model */
    assert_int_equal(ops->info(hv, &info), 0);
    assert_string_equal(info.name, "web");
    ops->close(hv);
    assert_int_equal(ops->open(mctx, "7", MIG_ROLE_SOURCE, &hv), 0);
    assert_int_equal(ops->info(hv, &info), 0);
    assert_string_equal(info.name, "web");
    assert_int_equal(info.nr_pages, NR_PFNS);
    assert_int_equal(info.vcpus, 2);
    assert_int_equal(info.page_size, 4096);
    /* the vif, for the network handoff: libxl's name with the source's id */
    assert_string_equal(info.config, "type=pvh,maxmem_kb=1200,stream=libxc-v3,"
                                     "vif0=00:16:3e:12:34:56/vif7.0/xenbr0/10.0.0.5");
    char vifs[256];
    assert_int_equal(ops->vifs(hv, vifs, sizeof(vifs)), -MIG_ESTATE); /* destination only */
    ops->close(hv);
}

/* The vif list of xen-net.c: libxl's names or the config's, xl's default
 * bridge, IPv4 only, names the handoff cannot take left out and counted. */
static void test_vifs_text(void **state)
{
    libxl_domain_config c;
    char out[512];
    unsigned skipped = 9;
    libxl_domain_config_init(&c);
    assert_int_equal(mig__xen_vifs_text(&c, 3, out, sizeof(out), &skipped), 0);
    assert_string_equal(out, "");
    assert_int_equal(skipped, 0);
    add_nic(&c, "xenbr0.10");
    add_nic(&c, "br1");
    free(c.nics[1].ip);
    c.nics[1].ip = xdup("fe80::1 192.168.1.2 10.1.1.1");
    c.nics[1].ifname = xdup("web-eth1");
    add_nic(&c, "br1");
    free(c.nics[2].bridge);
    c.nics[2].bridge = NULL; /* xl's default */
    free(c.nics[2].ip);
    c.nics[2].ip = NULL;
    add_nic(&c, "br1");
    c.nics[3].ifname = xdup("a-name-too-long-for-linux");
    add_nic(&c, "br;rm");
    assert_int_equal(mig__xen_vifs_text(&c, 12, out, sizeof(out), &skipped), 3);
    assert_int_equal(skipped, 2);
    assert_string_equal(out, ",vif0=00:16:3e:12:34:56/vif12.0/xenbr0.10/10.0.0.5"
                             ",vif1=00:16:3e:12:34:57/web-eth1/br1/192.168.1.2+10.1.1.1"
                             ",vif2=00:16:3e:12:34:58/vif12.2/xenbr0");
    assert_int_equal(mig__xen_vifs_text(&c, 12, out, 40, NULL), -MIG_ETOOBIG);
    libxl_domain_config_dispose(&c);
}

/* Round 0 everything, then exactly the dirty pages, bits past the end of
 * the guest ignored; holes read as zero pages. */
static void test_batches_cover_exactly_dirty_pages(void **state)
{
    struct mig__hv *hv = open_src();
    uint64_t pfns[NR_PFNS];
    int rc;
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_true(F.logdirty);
    for (unsigned i = 0; i < NR_PFNS; i++)
        pfns[i] = i;
    assert_int_equal(send_batch(hv, pfns, NR_PFNS), 0);

    set_dirty(3);
    set_dirty(64);
    set_dirty(65);
    set_dirty(105); /* a hole */
    set_dirty(NR_PFNS - 1);
    set_dirty(NR_PFNS + 5); /* beyond the guest: Xen's word tail */
    unsigned n = collect(hv, pfns, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 5);
    F.nmapped = 0;
    assert_int_equal(send_batch(hv, pfns, n), 0);
    assert_int_equal(F.nmapped, 5);
    const uint64_t want[] = {3, 64, 65, 105, NR_PFNS - 1};
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(F.mapped[i], want[i]);
    /* CLEAN cleared them */
    assert_int_equal(collect(hv, pfns, &rc), 0);
    rollback_and_close(hv, false);
    assert_source_restored();
}

static void test_map_failure_restores_everything(void **state)
{
    struct mig__hv *hv = open_src();
    uint64_t pfns[4] = {1, 2, 3, 4};
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_int_equal(ops->throttle(hv, 60), 0);
    assert_int_not_equal(F.cap, ADMIN_CAP);
    F.fail_map = true;
    assert_true(send_batch(hv, pfns, 4) < 0);
    rollback_and_close(hv, false);
    assert_source_restored();
}

static void test_clean_failure_restores_everything(void **state)
{
    struct mig__hv *hv = open_src();
    uint64_t pfns[NR_PFNS];
    int rc;
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_int_equal(ops->throttle(hv, 30), 0);
    F.fail_clean = true;
    collect(hv, pfns, &rc);
    assert_true(rc < 0);
    rollback_and_close(hv, false);
    assert_source_restored();
}

/* The engine crashing out without its rollback: close alone still turns
 * log-dirty off and gives the cap back, and leaves the run state alone. */
static void test_close_alone_cleans_up_but_keeps_run_state(void **state)
{
    struct mig__hv *hv = open_src();
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_int_equal(ops->throttle(hv, 50), 0);
    assert_int_equal(ops->suspend(hv), 0);
    ops->close(hv);
    assert_false(F.logdirty);
    assert_int_equal(F.cap, ADMIN_CAP);
    assert_int_equal(F.run, SUSPENDED); /* in doubt: stays paused */
    assert_int_equal(F.resumes, 0);
}

static void test_suspend_timeout_guest_keeps_running(void **state)
{
    struct mig__hv *hv = open_src();
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_int_equal(ops->throttle(hv, 80), 0);
    F.suspend_rc = ERROR_GUEST_TIMEDOUT;
    assert_int_equal(ops->suspend(hv), -MIG_ETIMEOUT);
    rollback_and_close(hv, false); /* the engine does not resume: not suspended */
    assert_source_restored();
}

/* A suspend that failed after the guest stopped: the backend resumes it,
 * since the engine only resumes what it was told is suspended. */
static void test_half_suspend_is_undone(void **state)
{
    struct mig__hv *hv = open_src();
    assert_int_equal(ops->logdirty_enable(hv), 0);
    F.suspend_rc = ERROR_FAIL;
    F.suspend_leaves_suspended = true;
    assert_int_equal(ops->suspend(hv), -MIG_EBACKEND);
    assert_int_equal(F.run, RUNNING);
    rollback_and_close(hv, false);
    assert_source_restored();
}

static void test_peer_loss_before_commit(void **state)
{
    struct mig__hv *hv = open_src();
    struct mig__blob setup = {0}, ckpt = {0};
    uint64_t pfns[NR_PFNS];
    int rc;
    assert_int_equal(ops->save_state(hv, &setup), 0);
    assert_int_equal(setup.kind, MIG_XEN_BLOB_SETUP);
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_int_equal(ops->throttle(hv, 40), 0);
    assert_int_equal(ops->suspend(hv), 0);
    collect(hv, pfns, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(ops->save_state(hv, &ckpt), 0);
    assert_int_equal(ckpt.kind, MIG_XEN_BLOB_CHECKPOINT);
    /* READY never came */
    rollback_and_close(hv, true);
    assert_source_restored();
    assert_int_equal(F.resumes, 1);
    free(setup.data);
    free(ckpt.data);
}

static void test_commit_renames_and_destroys(void **state)
{
    struct mig__hv *hv = open_src();
    assert_int_equal(ops->logdirty_enable(hv), 0);
    assert_int_equal(ops->suspend(hv), 0);
    assert_int_equal(ops->destroy(hv), 0);
    assert_string_equal(F.name, "web--migratedaway");
    assert_int_equal(F.run, GONE);
    assert_false(F.logdirty);
    ops->close(hv);
    assert_int_equal(F.resumes, 0);
}

static void test_throttle_caps(void **state)
{
    struct mig__hv *hv = open_src();
    assert_int_equal(ops->throttle(hv, 50), 0);
    assert_int_equal(F.cap, 100); /* 2 vCPUs * 50 */
    assert_int_equal(ops->throttle(hv, 20), 0);
    assert_int_equal(F.cap, ADMIN_CAP); /* never looser than the admin's 150 */
    assert_int_equal(ops->throttle(hv, 100), 0);
    assert_int_equal(F.cap, 1); /* 0 would mean uncapped */
    assert_int_equal(ops->throttle(hv, 0), 0);
    assert_int_equal(F.cap, ADMIN_CAP);
    ops->close(hv);

    F.cap = 0; /* the admin's: uncapped */
    hv = open_src();
    assert_int_equal(ops->throttle(hv, 30), 0);
    assert_int_equal(F.cap, 140);
    ops->close(hv);
    assert_int_equal(F.cap, 0);
}

struct blob_seen {
    uint32_t types[8];
    unsigned n;
    uint64_t holes[8][2];
    unsigned nholes;
    uint32_t nparams;
};

static char seen_config[256];

static int blob_visit(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                      uint32_t len)
{
    struct blob_seen *s = opaque;
    if (type == MIG_XS_PRIV_CONFIG)
        snprintf(seen_config, sizeof(seen_config), "%.*s", (int)len, (const char *)body);
    s->types[s->n++] = type;
    if (type == MIG_XS_PRIV_HOLES)
        for (uint32_t off = 0; off < len && s->nholes < 8; off += 16, s->nholes++)
            memcpy(s->holes[s->nholes], body + off, 16);
    if (type == MIG_XS_HVM_PARAMS)
        memcpy(&s->nparams, body, 4);
    return 0;
}

/* The holes found at setup are not mapped again when round 0 reaches
 * them (they read as zero), but a hole the guest populates later, which
 * log-dirty then reports, is mapped like any page. */
static void test_holes_mapped_once(void **state)
{
    struct mig__hv *hv = open_src();
    struct mig__blob b = {0};
    struct mig__hv_map *m = NULL;
    const void *ptrs[8];
    const uint64_t batch[3] = {HOLE_START - 1, HOLE_START, HOLE_START + 1};
    assert_int_equal(ops->save_state(hv, &b), 0); /* probes every pfn */
    free(b.data);
    F.nmapped = 0;
    assert_int_equal(ops->map_pages(hv, batch, 3, ptrs, &m), 0);
    assert_int_equal(F.nmapped, 1); /* only the populated pfn */
    assert_int_equal(F.mapped[0], HOLE_START - 1);
    for (unsigned i = 1; i < 3; i++)
        for (unsigned j = 0; j < 4096; j++)
            assert_int_equal(((const uint8_t *)ptrs[i])[j], 0);
    ops->unmap_pages(hv, m);
    /* seen once: a later round maps it (the fake still reports it as a
     * hole, so it reads as zero, but it was asked for) */
    F.nmapped = 0;
    assert_int_equal(ops->map_pages(hv, batch + 1, 1, ptrs, &m), 0);
    assert_int_equal(F.nmapped, 1);
    assert_int_equal(F.mapped[0], HOLE_START);
    ops->unmap_pages(hv, m);
    ops->close(hv);
}

static void test_state_blobs(void **state)
{
    struct mig__hv *hv = open_src();
    struct mig__blob b = {0};
    struct blob_seen s = {0};
    const uint32_t all[] = {MIG_XS_PRIV_CONFIG,    MIG_XS_PRIV_HOLES,   MIG_XS_X86_CPUID_POLICY,
                            MIG_XS_X86_MSR_POLICY, MIG_XS_X86_TSC_INFO, MIG_XS_HVM_CONTEXT,
                            MIG_XS_HVM_PARAMS};
    assert_int_equal(ops->throttle(hv, 50), 0); /* the cap must not travel */
    assert_int_equal(ops->save_state(hv, &b), 0);
    assert_int_equal(b.kind, MIG_XEN_BLOB_SETUP);
    assert_int_equal(mig__xs_parse_records(NULL, b.data, b.len, all, 7, blob_visit, &s), 0);
    assert_non_null(strstr(seen_config, "\"cap\":150"));
    assert_int_equal(s.n, 4);
    assert_int_equal(s.types[0], MIG_XS_PRIV_CONFIG);
    assert_int_equal(s.types[1], MIG_XS_PRIV_HOLES);
    assert_int_equal(s.types[2], MIG_XS_X86_CPUID_POLICY);
    assert_int_equal(s.types[3], MIG_XS_X86_MSR_POLICY);
    assert_int_equal(s.nholes, 1);
    assert_int_equal(s.holes[0][0], HOLE_START);
    assert_int_equal(s.holes[0][1], HOLE_END - HOLE_START);
    free(b.data);

    memset(&s, 0, sizeof(s));
    assert_int_equal(ops->suspend(hv), 0);
    assert_int_equal(ops->save_state(hv, &b), 0);
    assert_int_equal(b.kind, MIG_XEN_BLOB_CHECKPOINT);
    assert_int_equal(mig__xs_parse_records(NULL, b.data, b.len, all, 7, blob_visit, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.types[0], MIG_XS_X86_TSC_INFO);
    assert_int_equal(s.types[1], MIG_XS_HVM_CONTEXT);
    assert_int_equal(s.types[2], MIG_XS_HVM_PARAMS);
    assert_int_equal(s.nparams, 2); /* only the non-zero ones */
    free(b.data);
    ops->resume(hv);
    ops->close(hv);
}

static void test_facts(void **state)
{
    struct mig__hv *hv = open_src();
    char *json = NULL;
    assert_int_equal(ops->facts(hv, &json), 0);
    assert_non_null(strstr(json, "\"backend\":\"xen\""));
    assert_non_null(strstr(json, "\"xen_version\":\"4.17.0\""));
    assert_non_null(strstr(json, "\"avx2\""));
    assert_non_null(strstr(json, "\"virt_caps\":[\"hvm\",\"hap\"]"));
    assert_non_null(strstr(json, "\"guest\":{\"name\":\"web\""));
    assert_non_null(strstr(json, "\"cpu_features\":[\"fpu\",\"tsc\",\"hypervisor\"]"));
    assert_null(strstr(strstr(json, "cpu_features"), "avx2")); /* host only */
    assert_non_null(strstr(json, "\"disks\":[\"/dev/vg/web\"]"));
    /* what the profile module's parser makes of it */
    struct mig__facts *f = NULL;
    struct mig__perr perr;
    memset(&perr, 0, sizeof(perr));
    assert_int_equal(mig__facts_parse(json, strlen(json), "xen facts", &f, &perr), 0);
    assert_string_equal(f->backend, "xen");
    assert_true(f->has_cpu_features && mig__strv_has(&f->cpu_features, "avx2"));
    assert_true(f->has_guest && mig__strv_has(&f->guest.cpu_features, "hypervisor"));
    assert_false(mig__strv_has(&f->guest.cpu_features, "avx2"));
    assert_int_equal(f->guest.vcpus, 2);
    assert_true(f->has_tsc_scaling);
    mig__facts_free(f);
    free(json);
    ops->close(hv);
}

/* ---- destination ------------------------------------------------------ */

#define DEST_ARG "disk-map=/dev/vg/web=/dev/vg2/web,net-map=xenbr0=br1,start-timeout=2"

static struct mig__blob src_blob(bool checkpoint)
{
    struct mig__hv *hv = open_src();
    struct mig__blob b = {0};
    if (checkpoint)
        assert_int_equal(ops->suspend(hv), 0);
    assert_int_equal(ops->save_state(hv, &b), 0);
    if (checkpoint)
        ops->resume(hv);
    ops->close(hv);
    return b;
}

static struct mig__hv *open_dest(const char *arg)
{
    struct mig__hv *hv = NULL;
    struct mig__dom_info info = {.name = "web", .nr_pages = NR_PFNS, .page_size = 4096, .vcpus = 2};
    assert_int_equal(ops->open(mctx, arg, MIG_ROLE_DESTINATION, &hv), 0);
    assert_int_equal(ops->create_incoming(hv, &info), 0);
    return hv;
}

static void write_some_pages(struct mig__hv *hv)
{
    uint8_t data[3 * 4096];
    uint64_t pfns[3] = {0, 1, 299};
    memset(data, 0x11, 4096);
    memset(data + 4096, 0x22, 4096);
    memset(data + 8192, 0x33, 4096);
    assert_int_equal(ops->write_pages(hv, pfns, 3, data), 0);
}

static void test_dest_full_migration(void **state)
{
    struct mig__blob setup = src_blob(false), ckpt = src_blob(true);
    struct mig__hv *hv = open_dest(DEST_ARG);
    assert_int_equal(ops->load_state(hv, &setup), 0);
    write_some_pages(hv);
    assert_int_equal(ops->write_zero(hv, 95, 20), 0); /* 100..109 were holes */
    assert_int_equal(ops->write_zero(hv, 100, 2), 0); /* seen again: populated now */
    uint64_t p1 = 1;
    uint8_t again[4096];
    memset(again, 0x44, sizeof(again));
    assert_int_equal(ops->write_pages(hv, &p1, 1, again), 0); /* a later round */
    assert_int_equal(ops->load_state(hv, &ckpt), 0);
    char vifs[256];
    assert_int_equal(ops->vifs(hv, vifs, sizeof(vifs)), -MIG_ESTATE); /* not built yet */
    assert_int_equal(ops->ready(hv), 0);
    /* the new domain's vif: its new id, the bridge of the net-map */
    assert_int_equal(ops->vifs(hv, vifs, sizeof(vifs)), 0);
    assert_string_equal(vifs, ",vif0=00:16:3e:12:34:56/vif42.0/br1/10.0.0.5");
    assert_int_equal(F.stream_rc, 0);
    assert_int_equal(F.restore_calls, 1);
    assert_string_equal(F.cfg_name, "web--incoming");
    assert_string_equal(F.cfg_disk, "/dev/vg2/web");
    /* the memory pre-flight worked on a copy: libxl gets the source's
     * configuration, without libxl's defaults (ssidref) filled in */
    assert_int_equal(F.cfg_ssidref, 0);
    assert_string_equal(F.cfg_bridge, "br1");
    assert_int_equal(F.dmem[0], 0x11);
    assert_int_equal(F.dmem[1], 0x44);
    assert_int_equal(F.dmem[299], 0x33);
    assert_true(F.dpopulated[95] && F.dpopulated[99] && F.dpopulated[110] && F.dpopulated[114]);
    assert_false(F.dpopulated[102] || F.dpopulated[109]);
    assert_true(F.dpopulated[100] && F.dpopulated[101]);
    assert_int_equal(F.pages_received, 3 + 10 + 2 + 1);
    assert_true(F.incoming_exists && F.incoming_paused);
    assert_int_equal(ops->commit(hv), 0);
    assert_string_equal(F.incoming_name, "web");
    assert_false(F.incoming_paused);
    ops->close(hv);
    assert_true(F.incoming_exists); /* committed: close leaves it */
    free(setup.data);
    free(ckpt.data);
}

/* Built and READY, then the source vanished before COMMIT. */
static void test_dest_discard_after_ready(void **state)
{
    struct mig__blob setup = src_blob(false), ckpt = src_blob(true);
    struct mig__hv *hv = open_dest(DEST_ARG);
    assert_int_equal(ops->load_state(hv, &setup), 0);
    write_some_pages(hv);
    assert_int_equal(ops->load_state(hv, &ckpt), 0);
    assert_int_equal(ops->ready(hv), 0);
    assert_true(F.incoming_exists);
    assert_int_equal(ops->discard(hv), 0);
    assert_false(F.incoming_exists);
    ops->close(hv);
    assert_false(F.incoming_exists);
    free(setup.data);
    free(ckpt.data);
}

/* The link dies mid-stream: libxl's restore fails on the cut stream; what
 * it may have left under the incoming name is destroyed too. */
static void test_dest_failure_mid_stream(void **state)
{
    struct mig__blob setup = src_blob(false);
    struct mig__hv *hv = open_dest(DEST_ARG);
    F.restore_leaves_domain = true;
    assert_int_equal(ops->load_state(hv, &setup), 0);
    write_some_pages(hv);
    ops->discard(hv);
    assert_true(F.stream_rc < 0);
    assert_false(F.incoming_exists);
    ops->close(hv);
    free(setup.data);
}

/* libxl fails the build after the whole stream: READY is refused, and the
 * engine's close (no COMMIT) leaves nothing behind. */
static void test_dest_restore_failure(void **state)
{
    struct mig__blob setup = src_blob(false), ckpt = src_blob(true);
    struct mig__hv *hv = open_dest(DEST_ARG);
    F.restore_fail = ERROR_FAIL;
    F.restore_leaves_domain = true;
    assert_int_equal(ops->load_state(hv, &setup), 0);
    write_some_pages(hv);
    assert_int_equal(ops->load_state(hv, &ckpt), 0);
    assert_int_equal(ops->ready(hv), -MIG_EBACKEND);
    ops->close(hv);
    assert_false(F.incoming_exists);
    free(setup.data);
    free(ckpt.data);
}

static void test_dest_hostile_configs_refused_before_build(void **state)
{
    struct mig__blob setup = src_blob(false);
    for (int h = 1; h <= 5; h++) {
        F.hostile = h;
        struct mig__hv *hv = open_dest(DEST_ARG);
        assert_int_equal(ops->load_state(hv, &setup), -MIG_EPERM);
        /* pages that follow are refused, nothing blocks */
        uint8_t page[4096] = {0};
        uint64_t pfn = 0;
        assert_true(ops->write_pages(hv, &pfn, 1, page) < 0);
        ops->discard(hv);
        ops->close(hv);
        assert_int_equal(F.restore_calls, 0);
        assert_int_equal(F.need_calls, 0);
        assert_false(F.incoming_exists);
    }
    free(setup.data);
}

/* A disk path outside the map, with no map at all. */
static void test_dest_no_map_refuses_disks(void **state)
{
    struct mig__blob setup = src_blob(false);
    struct mig__hv *hv = open_dest("net-map=xenbr0=br1");
    assert_int_equal(ops->load_state(hv, &setup), -MIG_EPERM);
    ops->close(hv);
    assert_int_equal(F.restore_calls, 0);
    free(setup.data);
}

static void test_dest_memory_preflight(void **state)
{
    struct mig__blob setup = src_blob(false);
    struct mig__hv *hv = open_dest(DEST_ARG);
    F.need_kb = 16 << 20;
    F.dom0_spare_kb = 4 << 20; /* not enough even after ballooning */
    assert_int_equal(ops->load_state(hv, &setup), -MIG_ENOSPC);
    ops->close(hv);
    assert_int_equal(F.restore_calls, 0);

    /* dom0 owns the memory (Debian's default): autoballoon frees it */
    fake_reset();
    F.need_kb = 16 << 20;
    F.dom0_spare_kb = 32 << 20;
    hv = open_dest(DEST_ARG);
    assert_int_equal(ops->load_state(hv, &setup), 0);
    assert_true(F.balloons >= 1);
    assert_true(F.free_kb >= F.need_kb);
    ops->discard(hv);
    ops->close(hv);

    /* ... unless the admin said no */
    fake_reset();
    F.need_kb = 16 << 20;
    F.dom0_spare_kb = 32 << 20;
    hv = open_dest(DEST_ARG ",autoballoon=off");
    assert_int_equal(ops->load_state(hv, &setup), -MIG_ENOSPC);
    assert_int_equal(F.balloons, 0);
    ops->close(hv);
    free(setup.data);
}

/* Today's engine sends no setup blob before the pages: a bounded wait and
 * a clear error, not a hang. */
static void test_dest_pages_without_setup_time_out(void **state)
{
    struct mig__hv *hv = NULL;
    struct mig__dom_info info = {.name = "web", .nr_pages = NR_PFNS, .page_size = 4096, .vcpus = 2};
    uint8_t page[4096] = {0};
    uint64_t pfn = 0;
    assert_int_equal(ops->open(mctx, "start-timeout=1", MIG_ROLE_DESTINATION, &hv), 0);
    assert_int_equal(ops->create_incoming(hv, &info), 0);
    assert_int_equal(ops->write_pages(hv, &pfn, 1, page), -MIG_ETIMEOUT);
    ops->close(hv);
}

static void test_dest_rejects_bad_checkpoint(void **state)
{
    struct mig__blob setup = src_blob(false);
    struct mig__hv *hv = open_dest(DEST_ARG);
    uint8_t *buf = NULL;
    size_t len = 0;
    uint8_t tsc[24] = {0}, ctx[16] = {1}, params[8 + 16] = {1};
    params[8] = 99; /* not a param Xen's saver sends */
    params[16] = 1;
    assert_int_equal(ops->load_state(hv, &setup), 0);
    mig__xs_append_record(&buf, &len, MIG_XS_X86_TSC_INFO, tsc, 24);
    mig__xs_append_record(&buf, &len, MIG_XS_HVM_CONTEXT, ctx, 16);
    mig__xs_append_record(&buf, &len, MIG_XS_HVM_PARAMS, params, sizeof(params));
    struct mig__blob bad = {.kind = MIG_XEN_BLOB_CHECKPOINT, .len = len, .data = buf};
    assert_int_equal(ops->load_state(hv, &bad), -MIG_EPROTO);
    struct mig__blob unknown = {.kind = 0x1234, .len = len, .data = buf};
    assert_int_equal(ops->load_state(hv, &unknown), -MIG_EPROTO);
    /* a setup blob smuggling a page */
    struct mig__blob again = {.kind = MIG_XEN_BLOB_SETUP, .len = len, .data = buf};
    assert_int_equal(ops->load_state(hv, &again), -MIG_EPROTO);
    ops->discard(hv);
    ops->close(hv);
    assert_false(F.incoming_exists);
    free(buf);
    free(setup.data);
}

static void test_dest_bad_args(void **state)
{
    struct mig__hv *hv = NULL;
    assert_int_equal(ops->open(mctx, "disk-map=/a", MIG_ROLE_DESTINATION, &hv), -MIG_EINVAL);
    assert_int_equal(ops->open(mctx, "kernel-dir=relative", MIG_ROLE_DESTINATION, &hv),
                     -MIG_EINVAL);
    assert_int_equal(ops->open(mctx, "what=ever", MIG_ROLE_DESTINATION, &hv), -MIG_EINVAL);
    assert_null(hv);
}

/* resolve's question after a crash around COMMIT */
static void test_dest_probe(void **state)
{
    struct mig__hv *hv = NULL;
    enum mig__probe pr;
    assert_int_equal(ops->open(mctx, DEST_ARG, MIG_ROLE_DESTINATION, &hv), 0);
    assert_int_equal(ops->probe(hv, "web", &pr), 0); /* the fake's source domain: here */
    assert_int_equal(pr, MIG_PROBE_RUNNING);
    F.run = GONE;
    assert_int_equal(ops->probe(hv, "web", &pr), 0);
    assert_int_equal(pr, MIG_PROBE_ABSENT);
    F.incoming_exists = true;
    snprintf(F.incoming_name, sizeof(F.incoming_name), "web--incoming");
    assert_int_equal(ops->probe(hv, "web", &pr), 0);
    assert_int_equal(pr, MIG_PROBE_DISCARDED);
    assert_false(F.incoming_exists);
    /* renamed to its final name, crash before the unpause */
    F.incoming_exists = true;
    F.incoming_paused = true;
    snprintf(F.incoming_name, sizeof(F.incoming_name), "web");
    assert_int_equal(ops->probe(hv, "web", &pr), 0);
    assert_int_equal(pr, MIG_PROBE_RUNNING);
    assert_false(F.incoming_paused);
    ops->close(hv);
}

/* ---- the allow-list on its own ---------------------------------------- */

static void test_sanitize_rules(void **state)
{
    struct mig__xen_rules r = {0};
    libxl_domain_config c;
    char why[200];
    assert_int_equal(
        mig__xen_parse_map("/dev/vg/web=/dev/vg2/web", r.disks, MIG_XEN_MAX_MAP, &r.n_disks), 0);
    assert_int_equal(mig__xen_parse_map("xenbr0=br1", r.nets, MIG_XEN_MAX_MAP, &r.n_nets), 0);
    assert_int_equal(mig__xen_parse_dirs("/var/lib/xen/boot", &r), 0);

    libxl_domain_config_init(&c);
    fill_config(&c, "web");
    assert_int_equal(mig__xen_config_sanitize(mctx, &r, &c, why, sizeof(why)), 0);
    assert_string_equal(c.disks[0].pdev_path, "/dev/vg2/web");
    assert_string_equal(c.nics[0].bridge, "br1");
    libxl_domain_config_dispose(&c);

    /* kernel outside the allowed directories, or escaping them */
    libxl_domain_config_init(&c);
    fill_config(&c, "web");
    free(c.b_info.kernel);
    c.b_info.kernel = strdup("/var/lib/xen/boot/../../../etc/shadow");
    assert_int_equal(mig__xen_config_sanitize(mctx, &r, &c, why, sizeof(why)), -MIG_EPERM);
    libxl_domain_config_dispose(&c);

    /* a vif script, PCI passthrough, a vtpm */
    libxl_domain_config_init(&c);
    fill_config(&c, "web");
    c.nics[0].script = strdup("/tmp/x");
    assert_int_equal(mig__xen_config_sanitize(mctx, &r, &c, why, sizeof(why)), -MIG_EPERM);
    assert_non_null(strstr(why, "script"));
    libxl_domain_config_dispose(&c);

    libxl_domain_config_init(&c);
    fill_config(&c, "web");
    c.num_vtpms = 1;
    c.vtpms = calloc(1, sizeof(*c.vtpms));
    libxl_device_vtpm_init(c.vtpms);
    assert_int_equal(mig__xen_config_sanitize(mctx, &r, &c, why, sizeof(why)), -MIG_EPERM);
    libxl_domain_config_dispose(&c);

    /* xenstore data from the peer */
    libxl_domain_config_init(&c);
    fill_config(&c, "web");
    c.c_info.xsdata = calloc(3, sizeof(char *));
    c.c_info.xsdata[0] = strdup("k");
    c.c_info.xsdata[1] = strdup("v");
    assert_int_equal(mig__xen_config_sanitize(mctx, &r, &c, why, sizeof(why)), -MIG_EPERM);
    libxl_domain_config_dispose(&c);
    mig__xen_rules_dispose(&r);
}

/* ---- the engine and the backend together ------------------------------ */

struct receiver {
    int fd;
    unsigned timeout_ms; /* the receiver's link timeout, 0: default */
    const char *uri; /* listen here instead of serving fd */
    volatile int stop;
    char state_dir[64];
    int rc;
};

/* A hook that records what the destination's engine tells it of the new
 * domain's devices (dst_devices, after the backend's ready). */
static char devices_seen[512];
static int probe_src_begin(struct mig__hook *h, struct mig__hook_io *io, void **blob,
                           size_t *len)
{
    *blob = strdup("probe");
    *len = 5;
    return *blob ? 0 : -MIG_ENOMEM;
}
static int probe_dst_begin(struct mig__hook *h, const void *blob, size_t len)
{
    return 0;
}
static int probe_dst_devices(struct mig__hook *h, const char *vifs)
{
    snprintf(devices_seen, sizeof(devices_seen), "%s", vifs);
    return 0;
}
static void probe_free(struct mig__hook *h)
{
    free(h);
}
static const struct mig__hook_ops probe_ops = {
    .src_begin = probe_src_begin,
    .dst_begin = probe_dst_begin,
    .dst_devices = probe_dst_devices,
    .free = probe_free,
};
static int probe_new(const struct mig__hook_env *env, struct mig__hook **h_out)
{
    struct mig__hook *h = calloc(1, sizeof(*h));
    if (!h)
        return -MIG_ENOMEM;
    h->ops = &probe_ops;
    *h_out = h;
    return 0;
}
static const struct mig__hook_class probe_class = {
    .name = "probe", .id = MIG_HOOK_ID_TEST, .src_new = probe_new, .dst_new = probe_new};

static void *receiver_main(void *arg)
{
    struct receiver *r = arg;
    struct mig_ctx *ctx = NULL;
    struct mig_recv_params rp;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    assert_int_equal(mig__hook_register(ctx, &probe_class), 0);
    mig_recv_params_init(&rp);
    rp.backend = "xen:" DEST_ARG;
    rp.state_dir = r->state_dir;
    if (r->timeout_ms)
        rp.link.timeout_ms = r->timeout_ms;
    if (r->uri) {
        rp.link.channels = 4;
        r->rc = mig_listen_serve(ctx, &rp, r->uri, &r->stop);
    } else {
        r->rc = mig_receive_fds(ctx, &rp, r->fd, r->fd);
    }
    mig_ctx_free(ctx);
    return NULL;
}

/* source.c and dest.c, xen: on both sides: the setup state goes first, every
 * populated page arrives with its content, holes stay holes, the incoming
 * domain is renamed and running, the source is gone. Over an fd pair (data
 * on the control stream), or over a unix socket with two data channels
 * whose final round is held back (MIG_FAULT stall) while the control channel
 * delivers the state that ends libxl's stream: the destination must apply
 * the final pages first, or libxc restores without them. */
/* What a receiver killed mid-copy leaves (its claim no longer locked, its
 * NAME--incoming built), planted in the destination's state directory. */
static void plant_dead_receiver(const char *state_dir, const char *session_hex)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/receiving", state_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    strcat(path, "/web");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "session=%s\nname=web\npid=999999\n", session_hex);
    fclose(f);
    F.incoming_exists = true;
    F.incoming_paused = true;
    snprintf(F.incoming_name, sizeof(F.incoming_name), "web--incoming");
}

static bool claim_exists(const char *state_dir)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/receiving/web", state_dir);
    return access(path, F_OK) == 0;
}

static bool plant_leftover; /* engine_migrates: a dead receiver came first */

/* How often pfn was mapped (sent, or probed at setup) before the suspend. */
static unsigned mapped_before_suspend(uint64_t pfn)
{
    unsigned n = 0;
    for (unsigned i = 0; i < F.nmapped_at_suspend; i++)
        n += F.mapped[i] == pfn;
    return n;
}

static void engine_migrates(bool channels, bool stall_final, unsigned recv_timeout_ms)
{
    int sv[2];
    char uri[160], src_dir[64] = "/tmp/mig-xen-src-XXXXXX";
    struct receiver r = {.state_dir = "/tmp/mig-xen-dst-XXXXXX", .timeout_ms = recv_timeout_ms};
    struct mig_params p;
    struct mig_session *s = NULL;
    pthread_t t;
    assert_non_null(mkdtemp(src_dir));
    assert_non_null(mkdtemp(r.state_dir));
    if (plant_leftover)
        plant_dead_receiver(r.state_dir, "00112233445566778899aabbccddeeff");
    /* the destination has the bridge its net-map names (the pre-flight checks) */
    char net[128], br[160];
    snprintf(net, sizeof(net), "%s/net", r.state_dir);
    snprintf(br, sizeof(br), "%s/br1", net);
    assert_int_equal(mkdir(net, 0700), 0);
    assert_int_equal(mkdir(br, 0700), 0);
    strcat(br, "/bridge");
    assert_int_equal(mkdir(br, 0700), 0);
    setenv("MIG_XEN_SYSFS_NET", net, 1);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    r.fd = sv[1];
    set_dirty(17); /* written during round 0 */
    set_dirty(200);
    if (channels) {
        snprintf(uri, sizeof(uri), "unix:%s/sock", r.state_dir);
        r.uri = uri;
        /* read when the receiver's context is made: the final round (1) of
         * one data channel waits while the control channel runs ahead */
        if (stall_final)
            setenv("MIG_FAULT", "dest-pages@1=stall:1", 1);
    } else {
        snprintf(uri, sizeof(uri), "fd:%d,%d", sv[0], sv[0]);
    }
    assert_int_equal(pthread_create(&t, NULL, receiver_main, &r), 0);
    assert_int_equal(mig__hook_register(mctx, &probe_class), 0);
    devices_seen[0] = 0;
    mig_params_init(&p);
    p.domain = "xen:web";
    p.destination = uri;
    p.state_dir = src_dir;
    p.link.timeout_ms = 5000;
    if (channels) {
        p.link.channels = 2;
        usleep(300 * 1000); /* the listener binds */
    }
    assert_int_equal(mig_session_new(mctx, &p, &s), 0);
    int rc = mig_session_run(s);
    if (rc)
        fprintf(stderr, "session: %s\n", mig_session_error(s));
    assert_int_equal(rc, 0);
    mig_session_free(s);
    r.stop = 1;
    pthread_join(t, NULL);
    unsetenv("MIG_FAULT");
    assert_int_equal(r.rc, 0);
    close(sv[0]);
    close(sv[1]);

    assert_int_equal(F.stream_rc, 0);
    assert_int_equal(F.restore_calls, 1);
    assert_string_equal(F.cfg_disk, "/dev/vg2/web");
    /* the destination's hooks learnt the new domain's vif name */
    assert_string_equal(devices_seen, ",vif0=00:16:3e:12:34:56/vif42.0/br1/10.0.0.5");
    for (unsigned pfn = 0; pfn < NR_PFNS; pfn++) {
        bool hole = pfn >= HOLE_START && pfn < HOLE_END;
        assert_int_equal(F.dpopulated[pfn], !hole);
        if (!hole)
            assert_int_equal(F.dmem[pfn], (pfn & 0xff) | 1);
    }
    assert_true(F.incoming_exists);
    assert_string_equal(F.incoming_name, "web");
    assert_false(F.incoming_paused);
    assert_int_equal(F.run, GONE);
    assert_string_equal(F.name, "web--migratedaway");
    assert_false(F.logdirty);
    /* the session's claim went with it */
    assert_false(claim_exists(r.state_dir));
    rmdir(src_dir);
    if (channels) {
        char sock[96];
        snprintf(sock, sizeof(sock), "%s/sock", r.state_dir);
        unlink(sock);
    }
    rmdir(r.state_dir);
}

static void test_engine_migrates_through_the_stream(void **state)
{
    engine_migrates(false, false, 0);
    /* What round 0 left dirty (17, 200) was sent again while the guest
     * still ran, as Xen's saver does, not after the suspend: once more
     * than a page nobody wrote (5). */
    assert_int_equal(mapped_before_suspend(17), mapped_before_suspend(5) + 1);
    assert_int_equal(mapped_before_suspend(200), mapped_before_suspend(5) + 1);
}

static void test_engine_final_pages_before_the_state(void **state)
{
    engine_migrates(true, true, 0);
}

/* The setup state (a probe of the whole pfn space) takes longer than the
 * destination's link timeout: it is made before connecting, so the
 * destination never waits for DOMAIN_INFO that long. */
static void test_engine_slow_setup_state(void **state)
{
    F.map_delay_once_ms = 1500;
    engine_migrates(true, false, 1000);
}

/* The receiver of an earlier attempt was killed mid-copy (s3 of the Xen
 * end-to-end test): its web--incoming is still there, paused. The next
 * migration of web to this host must not be refused for it ("a domain
 * web--incoming already exists"): the claim it left unlocked says nobody
 * owns that domain, which is destroyed before the new one is built. */
static void test_engine_reaps_a_dead_receivers_domain(void **state)
{
    plant_leftover = true;
    engine_migrates(false, false, 0);
    plant_leftover = false;
    assert_int_equal(F.restore_calls, 1);
    assert_true(F.destroys >= 2); /* the leftover, and the source after COMMIT */
}

static void *listener_main(void *arg)
{
    struct receiver *r = arg;
    struct mig_ctx *ctx = NULL;
    struct mig_recv_params rp;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_recv_params_init(&rp);
    rp.backend = "xen:" DEST_ARG;
    rp.state_dir = r->state_dir;
    r->rc = mig_listen_serve(ctx, &rp, r->uri, &r->stop);
    mig_ctx_free(ctx);
    return NULL;
}

/* A listener that starts, serves nobody for 300 ms and stops. */
static void listen_briefly(struct receiver *r)
{
    pthread_t t;
    r->stop = 0;
    assert_int_equal(pthread_create(&t, NULL, listener_main, r), 0);
    usleep(300 * 1000);
    r->stop = 1;
    pthread_join(t, NULL);
    assert_int_equal(r->rc, 0);
}

/* A listener starting after one that was killed cleans up what it left,
 * before it takes any session: the incoming domain and the claim. A claim
 * a live receiver holds (locked) is not touched, nor its domain. */
static void test_listen_sweeps_what_dead_receivers_left(void **state)
{
    struct receiver r = {.state_dir = "/tmp/mig-xen-dst-XXXXXX"};
    char uri[160], path[160];
    assert_non_null(mkdtemp(r.state_dir));
    snprintf(uri, sizeof(uri), "unix:%s/sock", r.state_dir);
    r.uri = uri;

    /* a live receiver's claim: kept */
    plant_dead_receiver(r.state_dir, "00112233445566778899aabbccddeeff");
    snprintf(path, sizeof(path), "%s/receiving/web", r.state_dir);
    int live = open(path, O_RDWR);
    assert_true(live >= 0);
    assert_int_equal(flock(live, LOCK_EX | LOCK_NB), 0);
    listen_briefly(&r);
    assert_true(F.incoming_exists);
    assert_true(claim_exists(r.state_dir));

    /* its receiver dies: the next listener removes both */
    close(live);
    listen_briefly(&r);
    assert_false(F.incoming_exists);
    assert_false(claim_exists(r.state_dir));
    assert_int_equal(F.run, RUNNING); /* the domain under its own name: untouched */

    unlink(uri + 5);
    snprintf(path, sizeof(path), "%s/receiving", r.state_dir);
    rmdir(path);
    rmdir(r.state_dir);
}

/* ---- save images ------------------------------------------------------ */

/* mig_image_save writes what `xl save` writes (xl header with the JSON
 * configuration, the libxl/libxc stream with every populated page, the vCPU
 * state), our parser reads it back page for page, and the domain is gone. */
static void test_image_save_then_inspect(void **state)
{
    char path[] = "/tmp/mig-xen-img-XXXXXX";
    struct mig_image_info info;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(mig_image_save(mctx, "web", fd), 0);
    assert_int_equal(F.run, GONE);
    assert_string_equal(F.name, "web--migratedaway");
    assert_false(F.logdirty);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(mig_image_inspect(mctx, fd, &info), 0);
    assert_true(info.xl_header);
    assert_int_equal(info.xl_flags, 3);
    assert_string_equal(info.name, "web");
    assert_int_equal(info.libxc_version, 3);
    assert_int_equal(info.xen_major, 4);
    assert_int_equal(info.xen_minor, 17);
    assert_int_equal(info.pages, NR_PFNS - (HOLE_END - HOLE_START));
    assert_int_equal(info.data_pages, info.pages);
    assert_true(info.tsc_info);
    assert_true(info.hvm_context_len > 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    /* page for page, as the fake restore reads a stream */
    assert_int_equal(mig__xs_parse_stream(mctx, fd, dest_visit, NULL, NULL), 0);
    for (unsigned pfn = 0; pfn < NR_PFNS; pfn++) {
        bool hole = pfn >= HOLE_START && pfn < HOLE_END;
        assert_int_equal(F.dpopulated[pfn], !hole);
        if (!hole)
            assert_int_equal(F.dmem[pfn], (pfn & 0xff) | 1);
    }
    close(fd);
}

/* A save that fails before the suspend (its holes cannot be probed) leaves
 * the domain as it was. */
static void test_image_save_failure_keeps_the_domain(void **state)
{
    int fd = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0);
    F.fail_map = true;
    assert_true(mig_image_save(mctx, "web", fd) < 0);
    assert_int_equal(F.run, RUNNING);
    F.fail_map = false;
    assert_string_equal(F.name, "web");
    assert_false(F.logdirty);
    assert_int_equal(F.cap, ADMIN_CAP);
    /* not a Xen domain: refused before anything */
    assert_int_equal(mig_image_save(mctx, "sim:web", fd), -MIG_EINVAL);
    close(fd);
}

/* ...and one that fails after the suspend (a batch does not map) resumes
 * it. Needs a fault-injection build (CI's builds are). */
static void test_image_save_failure_after_suspend_resumes(void **state)
{
#ifdef MIG_FAULT_INJECTION
    int fd = open("/dev/null", O_WRONLY);
    struct mig_ctx *fctx = NULL;
    assert_true(fd >= 0);
    setenv("MIG_FAULT", "hv-map_pages=error", 1);
    assert_int_equal(mig_ctx_new(&fctx), 0);
    unsetenv("MIG_FAULT");
    assert_true(mig_image_save(fctx, "xen:web", fd) < 0);
    mig_ctx_free(fctx);
    assert_int_equal(F.run, RUNNING);
    assert_true(F.resumes > 0);
    assert_false(F.logdirty);
    assert_int_equal(F.cap, ADMIN_CAP);
    close(fd);
#else
    print_message("not a fault-injection build: hv-map_pages cannot fire\n");
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_refuses_pv_and_hvm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vifs_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_cover_exactly_dirty_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_failure_restores_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_failure_restores_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_alone_cleans_up_but_keeps_run_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_suspend_timeout_guest_keeps_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_suspend_is_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_loss_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_renames_and_destroys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holes_mapped_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_facts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_full_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_discard_after_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_failure_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_restore_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_hostile_configs_refused_before_build, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dest_no_map_refuses_disks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_memory_preflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_pages_without_setup_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_rejects_bad_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sanitize_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_migrates_through_the_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_final_pages_before_the_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_slow_setup_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_reaps_a_dead_receivers_domain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listen_sweeps_what_dead_receivers_left, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_image_save_then_inspect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_save_failure_keeps_the_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_save_failure_after_suspend_resumes, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
