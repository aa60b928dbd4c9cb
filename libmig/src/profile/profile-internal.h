/*
 * profile-internal.h: compatibility profiles, host facts and the pre-flight
 * check (issue 6; docs/profiles.md). What the profile module's files share
 * and the unit tests use:
 *   yaml.c     libyaml -> a small tree with positions, under size/depth caps
 *   cpuid.c    the CPUID feature table (Xen's names -> leaf/subleaf/reg/bit)
 *   profile.c  profile YAML -> struct mig__profile; cpuid= rendering
 *   facts.c    facts JSON -> struct mig__facts
 *   check.c    mig__preflight() and the verdict (text and JSON)
 *   api.c      the exported mig_profile_* / mig_preflight_check() wrappers
 */
#ifndef MIG_PROFILE_INTERNAL_H
#define MIG_PROFILE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mig-internal.h"

/* ---- limits on hostile input ------------------------------------------- */

#define MIG__PROF_MAX_BYTES (1u << 20)  /* bytes: a profile or facts text */
#define MIG__PROF_MAX_DEPTH 32          /* nesting of mappings/sequences */
#define MIG__PROF_MAX_NODES 65536       /* nodes in one document */
#define MIG__PROF_MAX_SCALAR 4096       /* bytes: one scalar */
#define MIG__PROF_ERR_LEN 512           /* bytes: one error message */

/* One parse error: "NAME:LINE:COL: message" (NUL-terminated). */
struct mig__perr {
    char msg[MIG__PROF_ERR_LEN];
};

MIG_HIDDEN void mig__perr_set(struct mig__perr *e, const char *name, unsigned line, unsigned col,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- yaml.c: the document tree ----------------------------------------- */

enum mig__ynode_type {
    MIG__Y_SCALAR,
    MIG__Y_SEQ,
    MIG__Y_MAP,
};

struct mig__ynode {
    enum mig__ynode_type type;
    unsigned line, col;          /* 1-based position of the node's start */
    bool quoted;                 /* scalar written quoted: a string, never a number */
    char *str;                   /* scalar text, NUL-terminated (no embedded NUL) */
    size_t n;                    /* seq: items; map: pairs */
    struct mig__ynode **kids;    /* seq: n items; map: 2n nodes, key then value */
};

/*
 * Parse 'len' bytes as one YAML document (JSON is the flow subset of it).
 * 'name' names the input in errors ("file.yaml", "destination facts").
 * Rejects: more than MIG__PROF_MAX_BYTES, NUL bytes, an empty document,
 * several documents, aliases, tags, non-scalar or duplicate mapping keys,
 * and anything over the depth/node/scalar caps. libyaml's problem text is
 * copied into *err here and goes no further. Caller frees *root_out with
 * mig__ynode_free(). -MIG_EPARSE, -MIG_ETOOBIG, -MIG_ENOMEM.
 */
MIG_HIDDEN int mig__yaml_parse(const char *buf, size_t len, const char *name,
                               struct mig__ynode **root_out, struct mig__perr *err);
MIG_HIDDEN void mig__ynode_free(struct mig__ynode *n); /* NULL-safe */
/* Map lookup by key; borrowed, NULL if absent. */
MIG_HIDDEN const struct mig__ynode *mig__ynode_get(const struct mig__ynode *map, const char *key);
/* Read a file of at most 'cap' bytes (reads cap + 1 to detect more).
 * -MIG_ETOOBIG (err says the size and the limit), errno codes otherwise.
 * Caller frees *buf_out (NUL-terminated). */
MIG_HIDDEN int mig__read_file_capped(const char *path, size_t cap, char **buf_out,
                                     size_t *len_out, struct mig__perr *err);

/* ---- cpuid.c: the feature table ---------------------------------------- */

enum mig__cpuid_reg {
    MIG__REG_EAX,
    MIG__REG_EBX,
    MIG__REG_ECX,
    MIG__REG_EDX,
};

#define MIG__CPUID_NO_SUBLEAF UINT32_MAX

struct mig__cpuid_feat {
    const char *name;      /* Xen's name: cpufeatureset.h lower-cased, '_' -> '-' */
    const char *xl_name;   /* the name xl.cfg cpuid= accepts since Xen 4.x (libxl's own
                            * table), NULL when only Xen >= 4.18 knows it (by 'name') */
    uint32_t leaf;
    uint32_t subleaf;      /* MIG__CPUID_NO_SUBLEAF when the leaf has none */
    enum mig__cpuid_reg reg;
    uint8_t bit;
    uint16_t xen_bit;      /* featureset index: word * 32 + bit */
};

#define MIG__CPUID_MAX_FEATS 256
#define MIG__FEATSET_WORDS (MIG__CPUID_MAX_FEATS / 64)

/* A set of table entries (by index). */
struct mig__featset {
    uint64_t w[MIG__FEATSET_WORDS];
};

MIG_HIDDEN size_t mig__cpuid_count(void);
MIG_HIDDEN const struct mig__cpuid_feat *mig__cpuid_at(size_t i);
/* Look a name up: Xen's name, '_' for '-', any case, or an alias (libxl's
 * legacy names, "lzcnt" for abm). Index or -1. */
MIG_HIDDEN int mig__cpuid_lookup(const char *name);
/* Canonical spelling for comparisons: lower case, '_' -> '-'; aliases to
 * their Xen name. Writes at most 'cap' bytes to 'out'. */
MIG_HIDDEN void mig__cpuid_canon(const char *name, char *out, size_t cap);
/* Platform/mitigation bits Xen manages: profiles leave them alone unless masked. */
MIG_HIDDEN bool mig__cpuid_is_platform(size_t i);
MIG_HIDDEN const char *mig__cpuid_reg_name(enum mig__cpuid_reg r);
/* "leaf 0x7 subleaf 0 ebx bit 5" into out. */
MIG_HIDDEN void mig__cpuid_describe(const struct mig__cpuid_feat *f, char *out, size_t cap);
/* Closest table name, for "did you mean". */
MIG_HIDDEN const char *mig__cpuid_closest(const char *name);

static inline void mig__featset_add(struct mig__featset *s, size_t i)
{
    s->w[i / 64] |= 1ull << (i % 64);
}
static inline bool mig__featset_has(const struct mig__featset *s, size_t i)
{
    return (s->w[i / 64] >> (i % 64)) & 1;
}

/* ---- profile.c --------------------------------------------------------- */

enum mig__vendor {
    MIG__VENDOR_ANY = 0,
    MIG__VENDOR_INTEL,
    MIG__VENDOR_AMD,
    MIG__VENDOR_HYGON,
    MIG__VENDOR_OTHER, /* facts only: a vendor string we do not know */
};

struct mig__version {
    unsigned v[3];         /* major, minor, patch */
};

#define MIG__MAX_VIRT_CAPS 16

struct mig__profile {
    char *name;                   /* owned */
    char *description;            /* owned, may be NULL */
    char *path;                   /* owned: the file it came from */
    enum mig__vendor vendor;      /* ANY: not constrained */
    bool has_features;            /* cpu.features given */
    struct mig__featset features; /* what a guest may see */
    struct mig__featset mask;     /* hidden from guests even inside 'features' */
    bool has_xen_min, has_xen_max;
    struct mig__version xen_min, xen_max; /* inclusive range */
    char *virt_caps[MIG__MAX_VIRT_CAPS]; /* owned: required 'xl info' virt_caps */
    size_t n_virt_caps;
    bool require_tsc_scaling;
    bool forbid_passthrough;      /* default true */
    bool forbid_nested_hvm;       /* default true */
    bool forbid_pod;              /* default true */
};

/* Parse a profile text; 'name' (the file path) names it in errors. Caller
 * frees with mig__profile_free(). -MIG_EPARSE with *err filled. */
MIG_HIDDEN int mig__profile_parse(const char *buf, size_t len, const char *name,
                                  struct mig__profile **p_out, struct mig__perr *err);
/* Read and parse a file (size capped before parsing). */
MIG_HIDDEN int mig__profile_load_file(const char *path, struct mig__profile **p_out,
                                      struct mig__perr *err);
/* NAME -> $MIG_PROFILE_DIR/configs/profiles/NAME.yaml if MIG_PROFILE_DIR is
 * set, else /etc/migrate-live/profiles/NAME.yaml; anything with a '/' or
 * ending in .yaml/.yml is a path. Caller frees *path_out. */
MIG_HIDDEN int mig__profile_resolve(const char *name_or_path, char **path_out);
MIG_HIDDEN void mig__profile_free(struct mig__profile *p); /* NULL-safe */
/* xl.cfg cpuid= value that boots a guest inside the baseline:
 * "host,feat=0,..." for every table feature outside it or masked, spelled
 * as libxl of 'xen_version' accepts it (NULL: 4.17, libxl's own table).
 * Features that libxl cannot name before 4.18 are left out and listed,
 * space-separated, in *skipped_out (may be NULL). Caller frees both. */
MIG_HIDDEN int mig__profile_render_cpuid(const struct mig__profile *p, const char *xen_version,
                                         char **out, char **skipped_out);
/* True if the guest may see table entry i under this profile. */
MIG_HIDDEN bool mig__profile_allows(const struct mig__profile *p, size_t i);
MIG_HIDDEN const char *mig__vendor_name(enum mig__vendor v);
/* "intel", "GenuineIntel", ... -> enum; unknown -> OTHER. */
MIG_HIDDEN enum mig__vendor mig__vendor_parse(const char *s);
/* "4.17.0", "4.17", "4.17.2-pre" -> version. false if no leading digits. */
MIG_HIDDEN bool mig__version_parse(const char *s, struct mig__version *v);
MIG_HIDDEN int mig__version_cmp(const struct mig__version *a, const struct mig__version *b);

/* ---- facts.c ----------------------------------------------------------- */

/* A list of owned strings. */
struct mig__strv {
    char **v;
    size_t n;
};

struct mig__guest_facts {
    char *name;
    bool has_mem, has_max_mem;
    uint64_t mem_bytes, max_mem_bytes;
    uint32_t vcpus;
    bool has_cpu_features;
    struct mig__strv cpu_features;
    bool passthrough, nested_hvm, pod;
    struct mig__strv bridges;
    struct mig__strv disks;
};

/* Every member optional: has_* says whether the source reported it. */
struct mig__facts {
    char *hostname;
    char *backend;
    char *xen_version;            /* NULL: not reported */
    bool has_cpu;
    char *cpu_vendor;             /* as reported */
    bool has_cpu_features;
    struct mig__strv cpu_features;
    bool has_virt_caps;
    struct mig__strv virt_caps;
    bool has_tsc_scaling;
    bool tsc_scaling;
    bool has_free_memory, has_total_memory;
    uint64_t free_memory_bytes, total_memory_bytes;
    bool has_bridges;
    struct mig__strv bridges;
    bool has_storage_paths;
    struct mig__strv storage_paths;
    /* "SRC=DST" entries: how the destination maps a guest's disks and
     * bridges (its --disk-map / --net-map), applied by the check */
    struct mig__strv disk_map;
    struct mig__strv net_map;
    bool has_guest;
    struct mig__guest_facts guest;
};

/* Parse a facts JSON object. Unknown keys are ignored (backends add their
 * own); known keys must have the documented type. Caller frees. */
MIG_HIDDEN int mig__facts_parse(const char *json, size_t len, const char *name,
                                struct mig__facts **f_out, struct mig__perr *err);
MIG_HIDDEN void mig__facts_free(struct mig__facts *f); /* NULL-safe */
MIG_HIDDEN bool mig__strv_has(const struct mig__strv *s, const char *x);

/* ---- check.c ----------------------------------------------------------- */

/* Where the guest's disks and bridges go on the destination (from the
 * command line): a pair maps a source path/bridge to a destination one;
 * unmapped ones keep their name. Strings borrowed. */
struct mig__map_pair {
    const char *from;
    const char *to;
};

struct mig__preflight_maps {
    const struct mig__map_pair *disks;
    size_t n_disks;
    const struct mig__map_pair *bridges;
    size_t n_bridges;
};

enum mig__issue_kind {
    MIG__ISSUE_FACTS,        /* facts unreadable or missing something a rule needs */
    MIG__ISSUE_CPU_FEATURE,  /* the guest uses a feature the destination lacks */
    MIG__ISSUE_BASELINE,     /* guest outside the profile, or host below it */
    MIG__ISSUE_CPU_VENDOR,
    MIG__ISSUE_XEN_VERSION,
    MIG__ISSUE_VIRT_CAP,
    MIG__ISSUE_TSC_SCALING,
    MIG__ISSUE_PASSTHROUGH,
    MIG__ISSUE_NESTED_HVM,
    MIG__ISSUE_POD,
    MIG__ISSUE_MEMORY,
    MIG__ISSUE_BRIDGE,
    MIG__ISSUE_DISK,
};

enum mig__severity {
    MIG__SEV_ERROR,          /* refuses the migration */
    MIG__SEV_WARNING,        /* reported; the migration may go on */
};

struct mig__issue {
    enum mig__issue_kind kind;
    enum mig__severity severity;
    char *subject;           /* owned: feature, bridge, disk, version... */
    const struct mig__cpuid_feat *feat; /* table entry for CPU issues, or NULL */
    char *rule;              /* owned: the profile rule or fact that decided */
    char *message;           /* owned: one sentence for humans */
};

struct mig__verdict {
    struct mig__issue *issues; /* owned, n entries */
    size_t n, cap;
    unsigned n_errors, n_warnings;
    char *profile;           /* owned: profile name or NULL */
    char *destination;       /* owned: destination hostname from its facts, or NULL */
};

/*
 * The pre-flight check: can the guest described in src_facts_json (its
 * "guest" member) run on the host described in dst_facts_json, under
 * 'profile' (may be NULL: fact-level rules only, passthrough/nested/PoD
 * refused) and the disk/bridge 'maps' (may be NULL)? Pure: no I/O.
 * *v_out (caller frees with mig__verdict_free) lists every incompatibility
 * and warning. Returns 0 if the migration may go on, -MIG_EINCOMPAT if the
 * verdict has errors, -MIG_EPARSE if a facts text is unreadable (the verdict
 * says where), -MIG_ENOMEM / -MIG_EINVAL (then *v_out is NULL).
 */
MIG_HIDDEN int mig__preflight(struct mig_ctx *ctx, const char *src_facts_json,
                              const char *dst_facts_json, const struct mig__profile *profile,
                              const struct mig__preflight_maps *maps,
                              struct mig__verdict **v_out);
MIG_HIDDEN void mig__verdict_free(struct mig__verdict *v); /* NULL-safe */
MIG_HIDDEN bool mig__verdict_ok(const struct mig__verdict *v); /* no errors */

enum mig__verdict_fmt {
    MIG__VERDICT_TEXT,       /* lines for a terminal */
    MIG__VERDICT_JSON,       /* one JSON object (docs/profiles.md) */
};
/* Render; caller frees *out. */
MIG_HIDDEN int mig__verdict_format(const struct mig__verdict *v, enum mig__verdict_fmt fmt,
                                   char **out);
MIG_HIDDEN const char *mig__issue_kind_name(enum mig__issue_kind k);

/*
 * The session's one call (api.c): load 'profile_ref' (a NAME or path as
 * mig_profile_load() takes it; NULL: no profile), run mig__preflight() and
 * log every issue. *why_out (caller frees, may be NULL on -MIG_ENOMEM) is
 * the text verdict, or the profile's load error; *json_out (caller frees;
 * pass NULL to skip) the same verdict as one JSON object, NULL when there is
 * no verdict (the profile did not load). 0: go on; -MIG_EINCOMPAT,
 * -MIG_EPARSE, or the profile's load error (-MIG_ENOENT, -MIG_EPARSE...).
 */
MIG_HIDDEN int mig__preflight_run(struct mig_ctx *ctx, const char *profile_ref,
                                  const char *src_facts_json, const char *dst_facts_json,
                                  const struct mig__preflight_maps *maps, char **why_out,
                                  char **json_out);

/* Public wrapper type (api.c): the opaque struct mig_profile of profile.h. */
struct mig_profile {
    struct mig__profile *p; /* owned */
};

#endif
