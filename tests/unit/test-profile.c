/*
 * Unit tests for the profile module (libmig/src/profile): the pre-flight
 * check over the facts fixtures in tests/fixtures/facts, the profile parser
 * on the shipped profiles and on malformed files (each must give one error
 * naming file:line:column), the facts parser, the CPUID table and cpuid=
 * rendering. Needs $top_srcdir (set by make check).
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
#include <unistd.h>

#include <cmocka.h>

#include <libmig/profile.h>

#include "profile-internal.h"

static char *srcpath(const char *rel)
{
    const char *top = getenv("top_srcdir");
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", top && *top ? top : ".", rel) > 0);
    return p;
}

static char *slurp(const char *rel)
{
    char *path = srcpath(rel);
    char *buf = NULL;
    size_t len = 0;
    struct mig__perr err = {{0}};
    int rc = mig__read_file_capped(path, MIG__PROF_MAX_BYTES, &buf, &len, &err);
    if (rc < 0)
        fail_msg("%s: %s", path, err.msg);
    free(path);
    return buf;
}

static struct mig__profile *load_profile(const char *rel)
{
    char *path = srcpath(rel);
    struct mig__profile *p = NULL;
    struct mig__perr err = {{0}};
    int rc = mig__profile_load_file(path, &p, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    free(path);
    return p;
}

/* Run the check over two fixture files; returns the rc, verdict in *v. */
static int run(const char *src, const char *dst, const char *profile,
               const struct mig__preflight_maps *maps, struct mig__verdict **v)
{
    char *s = slurp(src), *d = slurp(dst);
    struct mig__profile *p = profile ? load_profile(profile) : NULL;
    int rc = mig__preflight(NULL, s, d, p, maps, v);
    assert_non_null(*v);
    mig__profile_free(p);
    free(s);
    free(d);
    return rc;
}

static size_t count_kind(const struct mig__verdict *v, enum mig__issue_kind k,
                         enum mig__severity sev)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->issues[i].kind == k && v->issues[i].severity == sev)
            n++;
    return n;
}

static const struct mig__issue *find(const struct mig__verdict *v, enum mig__issue_kind k,
                                     const char *subject)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->issues[i].kind == k && (!subject || !strcmp(v->issues[i].subject, subject)))
            return &v->issues[i];
    return NULL;
}

static char *text_of(const struct mig__verdict *v, enum mig__verdict_fmt fmt)
{
    char *out = NULL;
    assert_int_equal(mig__verdict_format(v, fmt, &out), 0);
    assert_non_null(out);
    return out;
}

#define FX(name) "tests/fixtures/facts/" name
#define V2 "configs/profiles/x86-64-v2.yaml"
#define V3 "configs/profiles/x86-64-v3.yaml"

/* ---- the check over fixtures ------------------------------------------- */

static void identical_hosts_pass(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-host-guest.json"), FX("dst-identical.json"), NULL, NULL, &v), 0);
    assert_int_equal(v->n_errors, 0);
    assert_int_equal(v->n_warnings, 0);
    assert_true(mig__verdict_ok(v));
    char *t = text_of(v, MIG__VERDICT_TEXT);
    assert_non_null(strstr(t, "pre-flight to dst01: compatible (0 errors, 0 warnings)"));
    free(t);
    mig__verdict_free(v);
    /* The same under both shipped profiles: the v2 guest fits both. */
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-identical.json"), V2, NULL, &v), 0);
    assert_int_equal(v->n_errors, 0);
    assert_string_equal(v->profile, "x86-64-v2");
    mig__verdict_free(v);
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-identical.json"), V3, NULL, &v), 0);
    assert_int_equal(v->n_errors, 0);
    mig__verdict_free(v);
}

static void destination_lacks_feature(void **state)
{
    struct mig__verdict *v = NULL;
    int rc = run(FX("src-host-guest.json"), FX("dst-skylake.json"), NULL, NULL, &v);
    assert_int_equal(rc, -MIG_EINCOMPAT);
    /* The Skylake destination lacks the five AVX-512 features and SHA. */
    assert_int_equal(count_kind(v, MIG__ISSUE_CPU_FEATURE, MIG__SEV_ERROR), 6);
    assert_int_equal(v->n_errors, 6);
    const struct mig__issue *is = find(v, MIG__ISSUE_CPU_FEATURE, "avx512f");
    assert_non_null(is);
    assert_non_null(is->feat);
    assert_int_equal(is->feat->leaf, 7);
    assert_int_equal(is->feat->subleaf, 0);
    assert_int_equal(is->feat->reg, MIG__REG_EBX);
    assert_int_equal(is->feat->bit, 16);
    assert_non_null(strstr(is->message, "avx512f (leaf 0x7 subleaf 0 ebx bit 16)"));
    assert_non_null(strstr(is->rule, "subset"));
    is = find(v, MIG__ISSUE_CPU_FEATURE, "sha");
    assert_non_null(is);
    assert_int_equal(is->feat->bit, 29);

    char *t = text_of(v, MIG__VERDICT_TEXT);
    assert_non_null(strstr(t, "INCOMPATIBLE (6 errors"));
    assert_non_null(strstr(t, "cpuid: avx512bw (leaf 0x7 subleaf 0 ebx bit 30)"));
    free(t);
    char *j = text_of(v, MIG__VERDICT_JSON);
    assert_non_null(strstr(j, "\"compatible\":false"));
    assert_non_null(strstr(j, "{\"feature\":\"avx512f\",\"leaf\":7,\"subleaf\":0,"
                              "\"register\":\"ebx\",\"bit\":16}"));
    /* The JSON must be well-formed: our own capped parser reads it back. */
    struct mig__ynode *root = NULL;
    struct mig__perr err = {{0}};
    assert_int_equal(mig__yaml_parse(j, strlen(j), "verdict", &root, &err), 0);
    const struct mig__ynode *issues = mig__ynode_get(root, "issues");
    assert_non_null(issues);
    assert_int_equal(issues->type, MIG__Y_SEQ);
    assert_int_equal(issues->n, 6);
    mig__ynode_free(root);
    free(j);
    mig__verdict_free(v);
}

static void baseline_guest_on_richer_destination(void **state)
{
    struct mig__verdict *v = NULL;
    /* v2 guest, richer destination (more AVX-512, newer Xen), under v2 and v3. */
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-rich-compact.json"), V2, NULL, &v), 0);
    assert_int_equal(v->n_errors, 0);
    assert_int_equal(v->n_warnings, 0);
    mig__verdict_free(v);
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-rich-compact.json"), V3, NULL, &v), 0);
    assert_int_equal(v->n_errors, 0);
    mig__verdict_free(v);
}

static void guest_outside_baseline(void **state)
{
    struct mig__verdict *v = NULL;
    /* The guest sees the whole host, the profile promises v2 only. */
    int rc = run(FX("src-host-guest.json"), FX("dst-identical.json"), V2, NULL, &v);
    assert_int_equal(rc, -MIG_EINCOMPAT);
    assert_int_equal(count_kind(v, MIG__ISSUE_CPU_FEATURE, MIG__SEV_ERROR), 0);
    const struct mig__issue *is = find(v, MIG__ISSUE_BASELINE, "avx2");
    assert_non_null(is);
    assert_int_equal(is->severity, MIG__SEV_ERROR);
    assert_string_equal(is->rule, "profile x86-64-v2: cpu.features");
    assert_non_null(strstr(is->message, "profile render x86-64-v2"));
    /* Platform bits (speculation controls, x2apic) are not the profile's business. */
    assert_null(find(v, MIG__ISSUE_BASELINE, "md-clear"));
    assert_null(find(v, MIG__ISSUE_BASELINE, "x2apic"));
    mig__verdict_free(v);
}

static void destination_below_baseline_warns(void **state)
{
    struct mig__verdict *v = NULL;
    /* A v2 guest may go to a v2-only destination, but a v3 pool should hear
     * that this host does not belong to it. Strip avx2 from a copy. */
    char *s = slurp(FX("src-v2-guest.json")), *d = slurp(FX("dst-identical.json"));
    char *p = strstr(d, "\"avx2\",");
    assert_non_null(p);
    memmove(p, p + 7, strlen(p + 7) + 1);
    struct mig__profile *prof = load_profile(V3);
    assert_int_equal(mig__preflight(NULL, s, d, prof, NULL, &v), 0);
    const struct mig__issue *is = find(v, MIG__ISSUE_BASELINE, "avx2");
    assert_non_null(is);
    assert_int_equal(is->severity, MIG__SEV_WARNING);
    assert_int_equal(is->feat->leaf, 7);
    assert_int_equal(is->feat->bit, 5);
    mig__verdict_free(v);
    mig__profile_free(prof);
    free(s);
    free(d);
}

static void vendor_mismatch(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-amd.json"), NULL, NULL, &v),
                     -MIG_EINCOMPAT);
    const struct mig__issue *is = find(v, MIG__ISSUE_CPU_VENDOR, NULL);
    assert_non_null(is);
    assert_non_null(strstr(is->message, "source GenuineIntel, destination AuthenticAMD"));
    /* Beyond the vendor, the Intel-only speculation controls the guest sees
     * (AMD enumerates its own in 0x80000008) are missing: named one by one. */
    assert_int_equal(count_kind(v, MIG__ISSUE_CPU_FEATURE, MIG__SEV_ERROR), 4);
    assert_non_null(find(v, MIG__ISSUE_CPU_FEATURE, "ibrsb"));
    assert_non_null(find(v, MIG__ISSUE_CPU_FEATURE, "md-clear"));
    assert_int_equal(v->n_errors, 5);
    mig__verdict_free(v);
    /* A profile pinned to intel names its own rule too. */
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-amd.json"),
                         "tests/fixtures/profiles/allow-passthrough.yaml", NULL, &v),
                     -MIG_EINCOMPAT);
    assert_int_equal(count_kind(v, MIG__ISSUE_CPU_VENDOR, MIG__SEV_ERROR), 2);
    bool profile_rule = false;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->issues[i].rule, "profile pool-passthrough: cpu.vendor"))
            profile_rule = true;
    assert_true(profile_rule);
    mig__verdict_free(v);
}

static void xen_older_than_profile(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-xen-old.json"), V2, NULL, &v),
                     -MIG_EINCOMPAT);
    const struct mig__issue *is = NULL;
    for (size_t i = 0; i < v->n; i++)
        if (v->issues[i].kind == MIG__ISSUE_XEN_VERSION &&
            !strcmp(v->issues[i].rule, "profile x86-64-v2: xen.min_version"))
            is = &v->issues[i];
    assert_non_null(is);
    assert_string_equal(is->subject, "4.16.4");
    assert_non_null(strstr(is->message, "Xen 4.16.4, older than the profile's minimum 4.17.0"));
    /* And the fact-level rule: Xen never migrates to an older Xen. */
    assert_int_equal(count_kind(v, MIG__ISSUE_XEN_VERSION, MIG__SEV_ERROR), 2);
    mig__verdict_free(v);
    /* Without a profile only the fact-level rule remains. */
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-xen-old.json"), NULL, NULL, &v),
                     -MIG_EINCOMPAT);
    assert_int_equal(v->n_errors, 1);
    mig__verdict_free(v);
}

static void passthrough_refused(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-passthrough.json"), FX("dst-identical.json"), NULL, NULL, &v),
                     -MIG_EINCOMPAT);
    const struct mig__issue *is = find(v, MIG__ISSUE_PASSTHROUGH, NULL);
    assert_non_null(is);
    assert_string_equal(is->rule, "default: forbid.passthrough (no profile)");
    assert_int_equal(v->n_errors, 1);
    mig__verdict_free(v);
    assert_int_equal(run(FX("src-passthrough.json"), FX("dst-identical.json"), V2, NULL, &v),
                     -MIG_EINCOMPAT);
    is = find(v, MIG__ISSUE_PASSTHROUGH, NULL);
    assert_non_null(is);
    assert_string_equal(is->rule, "profile x86-64-v2: forbid.passthrough");
    mig__verdict_free(v);
}

static void too_little_memory(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-low-memory.json"), NULL, NULL, &v),
                     -MIG_EINCOMPAT);
    const struct mig__issue *is = find(v, MIG__ISSUE_MEMORY, NULL);
    assert_non_null(is);
    assert_int_equal(is->severity, MIG__SEV_ERROR);
    assert_non_null(strstr(is->message, "needs 2048 MiB, the destination has 1024 MiB free"));
    assert_int_equal(v->n_errors, 1);
    mig__verdict_free(v);
}

static void missing_bridge(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-no-bridge.json"), NULL, NULL, &v),
                     -MIG_EINCOMPAT);
    const struct mig__issue *is = find(v, MIG__ISSUE_BRIDGE, "xenbr0");
    assert_non_null(is);
    assert_int_equal(v->n_errors, 1);
    mig__verdict_free(v);
    /* Mapped to a bridge the destination has: fine. Mapped to a missing one: named. */
    struct mig__map_pair nets[] = {{"xenbr0", "ovsbr0"}};
    struct mig__preflight_maps maps = {.bridges = nets, .n_bridges = 1};
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-no-bridge.json"), NULL, &maps, &v), 0);
    mig__verdict_free(v);
    nets[0].to = "br-missing";
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-no-bridge.json"), NULL, &maps, &v),
                     -MIG_EINCOMPAT);
    is = find(v, MIG__ISSUE_BRIDGE, "br-missing");
    assert_non_null(is);
    assert_non_null(strstr(is->message, "mapped from xenbr0"));
    mig__verdict_free(v);
}

static void missing_disk_target(void **state)
{
    struct mig__verdict *v = NULL;
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-no-disk.json"), NULL, NULL, &v),
                     -MIG_EINCOMPAT);
    const struct mig__issue *is = find(v, MIG__ISSUE_DISK, "/dev/vg0/web01-data");
    assert_non_null(is);
    /* The image under /var/lib/xen/images exists there. */
    assert_null(find(v, MIG__ISSUE_DISK, "/var/lib/xen/images/web01.img"));
    assert_int_equal(v->n_errors, 1);
    mig__verdict_free(v);
    struct mig__map_pair disks[] = {
        {"/dev/vg0/web01-data", "/var/lib/xen/images/web01-data.img"},
    };
    struct mig__preflight_maps maps = {.disks = disks, .n_disks = 1};
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-no-disk.json"), NULL, &maps, &v), 0);
    mig__verdict_free(v);
    /* A prefix that is not a path component does not count. */
    disks[0].to = "/var/lib/xen/images-other/web01-data.img";
    assert_int_equal(run(FX("src-v2-guest.json"), FX("dst-no-disk.json"), NULL, &maps, &v),
                     -MIG_EINCOMPAT);
    mig__verdict_free(v);
}

static void profile_rules_on_host_caps(void **state)
{
    struct mig__verdict *v = NULL;
    char *s = slurp(FX("src-v2-guest.json"));
    /* full.yaml: xen 4.16..4.19.2, virt_caps hvm/hap/shadow, tsc_scaling required,
     * vendor intel, features include avx2 masked. */
    struct mig__profile *p = load_profile("tests/fixtures/profiles/full.yaml");
    const char *dst = "{\"hostname\":\"h\",\"xen_version\":\"4.20.0\",\"cpu\":{\"vendor\":"
                      "\"GenuineIntel\",\"features\":[\"sse2\"]},\"virt_caps\":[\"hvm\"],"
                      "\"tsc_scaling\":false,\"free_memory_bytes\":99999999999,"
                      "\"bridges\":[\"xenbr0\"],\"storage_paths\":[\"/\"]}";
    assert_int_equal(mig__preflight(NULL, s, dst, p, NULL, &v), -MIG_EINCOMPAT);
    assert_non_null(find(v, MIG__ISSUE_VIRT_CAP, "hap"));
    assert_non_null(find(v, MIG__ISSUE_VIRT_CAP, "shadow"));
    assert_null(find(v, MIG__ISSUE_VIRT_CAP, "hvm"));
    assert_non_null(find(v, MIG__ISSUE_TSC_SCALING, NULL));
    const struct mig__issue *is = find(v, MIG__ISSUE_XEN_VERSION, "4.20.0");
    assert_non_null(is);
    assert_string_equal(is->rule, "profile full.example_1: xen.max_version");
    /* nested_hvm is allowed by full.yaml; the guest does not use it anyway. */
    assert_null(find(v, MIG__ISSUE_NESTED_HVM, NULL));
    mig__verdict_free(v);
    /* Facts missing what a rule needs: errors that say so, not silence. */
    const char *bare = "{\"hostname\":\"h\",\"cpu\":{\"vendor\":\"GenuineIntel\"}}";
    assert_int_equal(mig__preflight(NULL, s, bare, p, NULL, &v), -MIG_EINCOMPAT);
    assert_non_null(find(v, MIG__ISSUE_FACTS, "xen_version"));
    assert_non_null(find(v, MIG__ISSUE_FACTS, "virt_caps"));
    assert_non_null(find(v, MIG__ISSUE_FACTS, "tsc_scaling"));
    assert_non_null(find(v, MIG__ISSUE_FACTS, "bridges"));
    assert_non_null(find(v, MIG__ISSUE_FACTS, "storage_paths"));
    assert_non_null(find(v, MIG__ISSUE_FACTS, "cpu_features")); /* a warning */
    mig__verdict_free(v);
    mig__profile_free(p);
    free(s);
}

static void facts_without_guest_or_unreadable(void **state)
{
    struct mig__verdict *v = NULL;
    char *d = slurp(FX("dst-identical.json"));
    /* Host-only facts (what the destination sends): host checks only, a warning. */
    assert_int_equal(mig__preflight(NULL, d, d, NULL, NULL, &v), 0);
    assert_non_null(find(v, MIG__ISSUE_FACTS, "guest"));
    assert_int_equal(v->n_errors, 0);
    mig__verdict_free(v);
    /* Unreadable facts: -MIG_EPARSE and a verdict saying where. */
    assert_int_equal(mig__preflight(NULL, d, "{\"cpu\": [1, 2", NULL, NULL, &v), -MIG_EPARSE);
    assert_int_equal(v->n_errors, 1);
    assert_non_null(strstr(v->issues[0].message, "unreadable facts: destination facts:"));
    assert_non_null(strstr(v->issues[0].message, "while parsing a flow sequence"));
    mig__verdict_free(v);
    assert_int_equal(mig__preflight(NULL, "{\"free_memory_bytes\": \"lots\"}", d, NULL, NULL, &v),
                     -MIG_EPARSE);
    assert_non_null(strstr(v->issues[0].message,
                           "source facts:1:23: free_memory_bytes must be a non-negative integer"));
    mig__verdict_free(v);
    assert_int_equal(mig__preflight(NULL, "[1,2]", d, NULL, NULL, &v), -MIG_EPARSE);
    mig__verdict_free(v);
    assert_int_equal(mig__preflight(NULL, NULL, d, NULL, NULL, &v), -MIG_EINVAL);
    assert_null(v);
    free(d);
}

static void public_api(void **state)
{
    struct mig_ctx *ctx = NULL;
    struct mig_profile *p = NULL;
    char *err = NULL, *report = NULL, *cpuid = NULL;
    char *top = srcpath("");
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, NULL, NULL);
    /* A NAME resolves under $MIG_PROFILE_DIR/configs/profiles. */
    setenv("MIG_PROFILE_DIR", top, 1);
    assert_int_equal(mig_profile_load(ctx, "x86-64-v3", &p, &err), 0);
    assert_null(err);
    assert_string_equal(mig_profile_name(p), "x86-64-v3");
    assert_non_null(strstr(mig_profile_path(p), "configs/profiles/x86-64-v3.yaml"));
    char *skipped = NULL;
    assert_int_equal(mig_profile_render_cpuid(p, NULL, &cpuid, &skipped), 0);
    assert_int_equal(strncmp(cpuid, "host,", 5), 0);
    assert_non_null(strstr(skipped, "xsaveopt"));
    free(cpuid);
    free(skipped);
    char *s = slurp(FX("src-host-guest.json")), *d = slurp(FX("dst-skylake.json"));
    assert_int_equal(mig_preflight_check(ctx, s, d, NULL, true, &report), -MIG_EINCOMPAT);
    assert_non_null(strstr(report, "\"errors\":6"));
    free(report);
    assert_int_equal(mig_preflight_check(ctx, s, d, p, false, &report), -MIG_EINCOMPAT);
    assert_non_null(strstr(report, "profile x86-64-v3"));
    free(report);
    free(s);
    free(d);
    mig_profile_free(p);
    p = NULL;
    assert_int_equal(mig_profile_load(ctx, "no-such-profile", &p, &err), -MIG_ENOENT);
    assert_non_null(strstr(err, "configs/profiles/no-such-profile.yaml"));
    free(err);
    assert_int_equal(mig_profile_load(ctx, "bad name!", &p, &err), -MIG_EINVAL);
    assert_non_null(err);
    free(err);
    unsetenv("MIG_PROFILE_DIR");
    mig_profile_free(NULL);
    free(top);
    mig_ctx_free(ctx);
}

/* Strings in facts come from the peer: they must not reach a terminal raw
 * nor break the JSON verdict; unknown features are compared by name. */
static void hostile_facts_strings(void **state)
{
    struct mig__verdict *v = NULL;
    const char *src = "{\"cpu\":{\"vendor\":\"GenuineIntel\"},\"guest\":{\"cpu_features\":"
                      "[\"sse2\",\"future-feature\"],\"bridges\":[\"br\\\"0\\u001b[31m\"]}}";
    const char *dst = "{\"hostname\":\"evil\\u001b]0;x\\u0007\\\"\",\"cpu\":{\"vendor\":"
                      "\"GenuineIntel\",\"features\":[\"SSE2\"]},\"bridges\":[]}";
    assert_int_equal(mig__preflight(NULL, src, dst, NULL, NULL, &v), -MIG_EINCOMPAT);
    const struct mig__issue *is = find(v, MIG__ISSUE_CPU_FEATURE, "future-feature");
    assert_non_null(is);
    assert_null(is->feat);
    assert_non_null(strstr(is->message, "not in migrate-live's CPUID table"));
    /* SSE2 upper-case on one side, sse2 on the other: the same feature. */
    assert_null(find(v, MIG__ISSUE_CPU_FEATURE, "sse2"));
    assert_non_null(find(v, MIG__ISSUE_BRIDGE, "br\"0?[31m"));
    char *t = text_of(v, MIG__VERDICT_TEXT);
    assert_null(strchr(t, 0x1b));
    assert_null(strchr(t, 0x07));
    free(t);
    char *j = text_of(v, MIG__VERDICT_JSON);
    struct mig__ynode *root = NULL;
    struct mig__perr err = {{0}};
    assert_int_equal(mig__yaml_parse(j, strlen(j), "verdict", &root, &err), 0);
    const struct mig__ynode *issues = mig__ynode_get(root, "issues");
    assert_int_equal(issues->n, v->n);
    assert_non_null(strstr(j, "\"cpuid\":null"));
    mig__ynode_free(root);
    free(j);
    mig__verdict_free(v);
}

/* What the session calls after the destination's FACTS record. */
static void session_helper(void **state)
{
    struct mig_ctx *ctx = NULL;
    char *why = NULL, *top = srcpath("");
    char *s = slurp(FX("src-host-guest.json")), *d = slurp(FX("dst-skylake.json"));
    char *ok = slurp(FX("dst-identical.json"));
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, NULL, NULL);
    setenv("MIG_PROFILE_DIR", top, 1);
    assert_int_equal(mig__preflight_run(ctx, NULL, s, ok, NULL, &why, NULL), 0);
    assert_non_null(strstr(why, "compatible (0 errors"));
    free(why);
    char *json = NULL;
    assert_int_equal(mig__preflight_run(ctx, NULL, s, d, NULL, &why, &json), -MIG_EINCOMPAT);
    assert_non_null(strstr(why, "avx512f (leaf 0x7 subleaf 0 ebx bit 16)"));
    /* the same verdict for machines (--check --json, Ansible) */
    assert_non_null(json);
    assert_non_null(strstr(json, "{\"compatible\":false,"));
    assert_non_null(strstr(json, "\"kind\":\"cpu-feature\",\"subject\":\"avx512f\""));
    free(json);
    free(why);
    assert_int_equal(mig__preflight_run(ctx, "x86-64-v2", s, ok, NULL, &why, NULL), -MIG_EINCOMPAT);
    assert_non_null(strstr(why, "outside profile x86-64-v2"));
    free(why);
    assert_int_equal(mig__preflight_run(ctx, "missing", s, ok, NULL, &why, NULL), -MIG_ENOENT);
    assert_non_null(strstr(why, "missing.yaml: cannot open"));
    free(why);
    assert_int_equal(mig__preflight_run(ctx, NULL, s, "{", NULL, &why, NULL), -MIG_EPARSE);
    assert_non_null(strstr(why, "unreadable facts: destination facts:"));
    free(why);
    unsetenv("MIG_PROFILE_DIR");
    free(s);
    free(d);
    free(ok);
    free(top);
    mig_ctx_free(ctx);
}

/* ---- the profile parser ------------------------------------------------- */

static void shipped_profiles_parse(void **state)
{
    struct mig__profile *v2 = load_profile(V2), *v3 = load_profile(V3);
    assert_string_equal(v2->name, "x86-64-v2");
    assert_int_equal(v2->vendor, MIG__VENDOR_ANY);
    assert_true(v2->has_xen_min);
    assert_int_equal(v2->xen_min.v[0], 4);
    assert_int_equal(v2->xen_min.v[1], 17);
    assert_int_equal(v2->n_virt_caps, 2);
    assert_true(v2->forbid_passthrough && v2->forbid_nested_hvm && v2->forbid_pod);
    /* psABI: v2 = cx16, lahf_lm, popcnt, sse3, sse4_1, sse4_2, ssse3; v3 adds ... */
    static const char *const l2[] = {"cx16", "lahf_lm", "popcnt", "sse3", "sse4_1", "sse4_2",
                                     "ssse3", NULL};
    static const char *const l3[] = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt",
                                     "movbe", "xsave", NULL};
    for (size_t i = 0; l2[i]; i++) {
        int idx = mig__cpuid_lookup(l2[i]);
        assert_true(idx >= 0);
        assert_true(mig__profile_allows(v2, (size_t)idx));
        assert_true(mig__profile_allows(v3, (size_t)idx));
    }
    for (size_t i = 0; l3[i]; i++) {
        int idx = mig__cpuid_lookup(l3[i]);
        assert_true(idx >= 0);
        assert_false(mig__profile_allows(v2, (size_t)idx));
        assert_true(mig__profile_allows(v3, (size_t)idx));
    }
    mig__profile_free(v2);
    mig__profile_free(v3);
}

static void full_profile_parses(void **state)
{
    struct mig__profile *p = load_profile("tests/fixtures/profiles/full.yaml");
    assert_string_equal(p->name, "full.example_1");
    assert_string_equal(p->description, "every key, for the parser tests");
    assert_int_equal(p->vendor, MIG__VENDOR_INTEL);
    assert_int_equal(p->xen_min.v[1], 16);
    assert_int_equal(p->xen_max.v[2], 2);
    assert_true(p->require_tsc_scaling);
    assert_false(p->forbid_nested_hvm);
    assert_true(p->forbid_pod);
    /* avx2 listed and masked: not allowed; lzcnt is abm. */
    assert_false(mig__profile_allows(p, (size_t)mig__cpuid_lookup("avx2")));
    assert_true(mig__profile_allows(p, (size_t)mig__cpuid_lookup("abm")));
    assert_true(mig__profile_allows(p, (size_t)mig__cpuid_lookup("sse4-1")));
    mig__profile_free(p);
}

/* Parse a fixture that must fail; returns the error text (static). */
static const char *parse_error(const char *rel, int want_rc)
{
    static struct mig__perr err;
    char *path = srcpath(rel);
    struct mig__profile *p = NULL;
    memset(&err, 0, sizeof(err));
    int rc = mig__profile_load_file(path, &p, &err);
    assert_null(p);
    assert_int_equal(rc, want_rc);
    /* One error, one line: "PATH:LINE:COL: message". */
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    assert_null(strchr(err.msg, '\n'));
    free(path);
    return strstr(err.msg, ".yaml:") ? strstr(err.msg, ".yaml:") + 5 : err.msg;
}

static void malformed_profiles(void **state)
{
    const char *e;
    e = parse_error("tests/fixtures/profiles/bad-indent.yaml", -MIG_EPARSE);
    assert_string_equal(e, ":4:13: mapping values are not allowed in this context");
    e = parse_error("tests/fixtures/profiles/wrong-type.yaml", -MIG_EPARSE);
    assert_string_equal(e, ":4:13: cpu.features must be a list, not a scalar");
    e = parse_error("tests/fixtures/profiles/unknown-key.yaml", -MIG_EPARSE);
    assert_string_equal(e, ":3:3: unknown key 'vendr' in cpu (did you mean 'vendor'?)");
    e = parse_error("tests/fixtures/profiles/duplicate-key.yaml", -MIG_EPARSE);
    assert_string_equal(e, ":5:1: duplicate key 'cpu' (first at line 2, column 1)");
    e = parse_error("tests/fixtures/profiles/empty.yaml", -MIG_EPARSE);
    assert_string_equal(e, ":1:1: empty document (no content)");
    e = parse_error("tests/fixtures/profiles/unknown-feature.yaml", -MIG_EPARSE);
    assert_string_equal(e,
                        ":5:7: cpu.features: unknown CPU feature 'avx512fx' (did you mean "
                        "'avx512f'?)");
    e = parse_error("tests/fixtures/profiles/bad-version.yaml", -MIG_EPARSE);
    assert_string_equal(e, ":6:16: xen.max_version 4.15 is older than xen.min_version 4.17");
}

/* Write 'len' bytes of 'data' to a new file in a temp dir; returns its path. */
static char *temp_file(char *dir_out, const void *data, size_t len, const char *name)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", dir_out, name) > 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *parse_text(const char *text, size_t len, int want_rc)
{
    static struct mig__perr err;
    struct mig__profile *p = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_equal(mig__profile_parse(text, len, "t.yaml", &p, &err), want_rc);
    assert_null(p);
    assert_null(strchr(err.msg, '\n'));
    return err.msg;
}

static void hostile_inputs(void **state)
{
    char dir[] = "/tmp/mig-profile-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct mig__perr err;
    struct mig__profile *p = NULL;

    /* Binary garbage (fixed seed, so a failure reproduces), without and with NULs. */
    unsigned char junk[4096];
    uint32_t x = 0x12345678;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16) | 0x80; /* high bytes: invalid UTF-8 */
    }
    char *path = temp_file(dir, junk, sizeof(junk), "garbage.yaml");
    memset(&err, 0, sizeof(err));
    assert_int_equal(mig__profile_load_file(path, &p, &err), -MIG_EPARSE);
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    assert_non_null(strstr(err.msg, ":1:1: "));
    assert_non_null(strstr(err.msg, "UTF-8"));
    unlink(path);
    free(path);
    junk[100] = 0;
    junk[0] = 'a';
    junk[1] = '\n';
    path = temp_file(dir, junk, sizeof(junk), "nul.yaml");
    memset(&err, 0, sizeof(err));
    assert_int_equal(mig__profile_load_file(path, &p, &err), -MIG_EPARSE);
    assert_non_null(strstr(err.msg, ".yaml:2:99: binary data (a NUL byte)"));
    unlink(path);
    free(path);

    /* A 100 MB file: refused on its size, before anything is read or parsed. */
    assert_true(asprintf(&path, "%s/huge.yaml", dir) > 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    static char chunk[1 << 20];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = i % 64 == 63 ? '\n' : "- sse2      "[i % 12];
    for (int i = 0; i < 100; i++)
        assert_int_equal(fwrite(chunk, 1, sizeof(chunk), f), sizeof(chunk));
    assert_int_equal(fclose(f), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(mig__profile_load_file(path, &p, &err), -MIG_ETOOBIG);
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    assert_non_null(strstr(err.msg, ":1:1: file is 104857600 bytes, more than the 1048576-byte "
                                    "limit"));
    unlink(path);
    free(path);

    /* Text-level caps and refusals. */
    const char *e;
    char deep[200];
    memset(deep, '[', 100);
    deep[100] = '\0';
    e = parse_text(deep, strlen(deep), -MIG_ETOOBIG);
    assert_string_equal(e, "t.yaml:1:33: nested deeper than 32 levels");
    static const char alias[] = "name: &a x\ndescription: *a\n";
    e = parse_text(alias, strlen(alias), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:2:14: aliases (*name) are not supported");
    static const char tag[] = "name: !!str x\n";
    e = parse_text(tag, strlen(tag), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:1:7: tags (tag:yaml.org,2002:str) are not supported");
    static const char two[] = "name: a\n---\nname: b\n";
    e = parse_text(two, strlen(two), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:2:1: more than one document in the file");
    static const char tabs[] = "name: a\ncpu:\n\tfeatures: [sse2]\n";
    e = parse_text(tabs, strlen(tabs), -MIG_EPARSE);
    assert_int_equal(strncmp(e, "t.yaml:3:1: ", 12), 0);
    static const char comments[] = "# nothing but a comment\n";
    e = parse_text(comments, strlen(comments), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:1:1: empty document (no content)");
    static const char scalar_root[] = "just words\n";
    e = parse_text(scalar_root, strlen(scalar_root), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:1:1: a profile must be a mapping, not a scalar");
    static const char bad_bool[] = "name: a\ncpu: {features: [sse2]}\nforbid: {pod: yes}\n";
    e = parse_text(bad_bool, strlen(bad_bool), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:3:15: forbid.pod must be true or false, not 'yes'");
    static const char bad_vendor[] = "name: a\ncpu: {vendor: via, features: [sse2]}\n";
    e = parse_text(bad_vendor, strlen(bad_vendor), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:2:15: cpu.vendor must be intel, amd, hygon or any, not 'via'");
    static const char bad_cap[] = "name: a\ncpu: {features: [sse2]}\nvirt_caps: [hvm, happ]\n";
    e = parse_text(bad_cap, strlen(bad_cap), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:3:18: virt_caps: unknown capability 'happ' (did you mean "
                           "'hap'?)");
    static const char no_cpu[] = "name: a\n";
    e = parse_text(no_cpu, strlen(no_cpu), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:1:1: the profile needs a 'cpu' section (vendor, features)");
    static const char far_key[] = "name: a\ncpu: {features: [sse2]}\nzzzzzz: 1\n";
    e = parse_text(far_key, strlen(far_key), -MIG_EPARSE);
    assert_non_null(strstr(e, "t.yaml:3:1: unknown key 'zzzzzz' in the profile (expected one of: "
                              "name, description, cpu"));
    static const char twice[] = "name: a\ncpu: {features: [sse2, sse2]}\n";
    e = parse_text(twice, strlen(twice), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:2:24: cpu.features: feature 'sse2' is listed twice");
    static const char ver[] = "name: a\ncpu: {features: [sse2]}\nxen: {min_version: 4}\n";
    e = parse_text(ver, strlen(ver), -MIG_EPARSE);
    assert_string_equal(e, "t.yaml:3:20: xen.min_version must be a Xen version like \"4.17\" or "
                           "\"4.17.2\", not '4'");
    char big[MIG__PROF_MAX_SCALAR + 64];
    memcpy(big, "name: ", 6);
    memset(big + 6, 'x', MIG__PROF_MAX_SCALAR + 1);
    big[6 + MIG__PROF_MAX_SCALAR + 1] = '\0';
    e = parse_text(big, strlen(big), -MIG_ETOOBIG);
    assert_string_equal(e, "t.yaml:1:7: value of 4097 bytes is longer than the 4096-byte limit");
    /* Many nodes. */
    size_t n = 70000 * 3 + 16;
    char *many = malloc(n);
    assert_non_null(many);
    size_t off = (size_t)sprintf(many, "[");
    for (int i = 0; i < 70000; i++)
        off += (size_t)sprintf(many + off, "1,");
    many[off++] = ']';
    e = parse_text(many, off, -MIG_ETOOBIG);
    assert_non_null(strstr(e, "more than 65536 nodes in one document"));
    free(many);
    assert_int_equal(rmdir(dir), 0);
}

static void missing_file(void **state)
{
    struct mig__perr err = {{0}};
    struct mig__profile *p = NULL;
    assert_int_equal(mig__profile_load_file("/nonexistent/x.yaml", &p, &err), -MIG_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/x.yaml: cannot open"));
    char *top = srcpath("configs/profiles");
    assert_int_equal(mig__profile_load_file(top, &p, &err), -MIG_EINVAL);
    assert_non_null(strstr(err.msg, "configs/profiles: is a directory"));
    free(top);
}

static void resolve_names(void **state)
{
    char *path = NULL;
    unsetenv("MIG_PROFILE_DIR");
    assert_int_equal(mig__profile_resolve("x86-64-v2", &path), 0);
    assert_string_equal(path, "/etc/migrate-live/profiles/x86-64-v2.yaml");
    free(path);
    setenv("MIG_PROFILE_DIR", "/src", 1);
    assert_int_equal(mig__profile_resolve("pool", &path), 0);
    assert_string_equal(path, "/src/configs/profiles/pool.yaml");
    free(path);
    assert_int_equal(mig__profile_resolve("my.yaml", &path), 0);
    assert_string_equal(path, "my.yaml");
    free(path);
    assert_int_equal(mig__profile_resolve("./x", &path), 0);
    assert_string_equal(path, "./x");
    free(path);
    assert_int_equal(mig__profile_resolve("a b", &path), -MIG_EINVAL);
    assert_int_equal(mig__profile_resolve("", &path), -MIG_EINVAL);
    unsetenv("MIG_PROFILE_DIR");
}

/* ---- rendering, table, helpers ----------------------------------------- */

static void render_cpuid(void **state)
{
    struct mig__profile *v2 = load_profile(V2), *v3 = load_profile(V3);
    char *s2 = NULL, *s3 = NULL, *sk = NULL, *s2new = NULL;
    /* For Xen 4.17's xl (the default): legacy names, the rest listed. */
    assert_int_equal(mig__profile_render_cpuid(v2, NULL, &s2, &sk), 0);
    assert_int_equal(mig__profile_render_cpuid(v3, "4.17.3", &s3, NULL), 0);
    assert_string_equal(sk, "dbext monitorx xsaveopt xsavec xgetbv1 xsaves sgx pqe movdiri "
                            "movdir64b enqcmd efro serialize tsxldtrk");
    assert_null(strstr(s2, ",xsaveopt=0"));
    assert_null(strstr(s2, ",serialize=0"));
    /* For 4.18 and later every name goes in, legacy spellings still first. */
    assert_int_equal(mig__profile_render_cpuid(v2, "4.18.0", &s2new, NULL), 0);
    assert_non_null(strstr(s2new, ",xsaveopt=0"));
    assert_non_null(strstr(s2new, ",serialize=0"));
    assert_non_null(strstr(s2new, ",aes=0,"));
    free(s2new);
    free(sk);
    assert_int_equal(strncmp(s2, "host,", 5), 0);
    /* v2 hides AVX and friends, in libxl's spelling where Xen 4.17 needs it. */
    assert_non_null(strstr(s2, ",avx=0,"));
    assert_non_null(strstr(s2, ",avx2=0,"));
    assert_non_null(strstr(s2, ",aes=0,")); /* aesni: libxl's legacy name */
    assert_null(strstr(s2, ",sse4_1=0"));
    assert_null(strstr(s2, ",sse2=0"));
    assert_null(strstr(s2, ",lahfsahf=0"));
    assert_null(strstr(s2, ",md-clear=0")); /* platform bits are left to Xen */
    assert_null(strstr(s3, ",avx2=0"));
    assert_null(strstr(s3, ",abm=0"));
    assert_non_null(strstr(s3, ",avx512f=0"));
    assert_null(strstr(s3, ",lahfsahf=0"));
    /* Every item is NAME=0 and NAME is a known feature. */
    char *save = NULL, *copy = strdup(s2);
    size_t items = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save), items++) {
        if (items == 0) {
            assert_string_equal(t, "host");
            continue;
        }
        size_t l = strlen(t);
        assert_true(l > 2 && !strcmp(t + l - 2, "=0"));
        t[l - 2] = '\0';
        assert_true(mig__cpuid_lookup(t) >= 0);
    }
    assert_true(items > 50);
    free(copy);
    free(s2);
    free(s3);
    mig__profile_free(v2);
    mig__profile_free(v3);
}

static void cpuid_table(void **state)
{
    /* Spot checks against cpufeatureset.h and the vendors' manuals. */
    static const struct {
        const char *name;
        uint32_t leaf, subleaf;
        enum mig__cpuid_reg reg;
        unsigned bit;
    } want[] = {
        {"sse2", 1, MIG__CPUID_NO_SUBLEAF, MIG__REG_EDX, 26},
        {"sse4_2", 1, MIG__CPUID_NO_SUBLEAF, MIG__REG_ECX, 20},
        {"cx16", 1, MIG__CPUID_NO_SUBLEAF, MIG__REG_ECX, 13},
        {"popcnt", 1, MIG__CPUID_NO_SUBLEAF, MIG__REG_ECX, 23},
        {"lahf_lm", 0x80000001, MIG__CPUID_NO_SUBLEAF, MIG__REG_ECX, 0},
        {"lzcnt", 0x80000001, MIG__CPUID_NO_SUBLEAF, MIG__REG_ECX, 5},
        {"nx", 0x80000001, MIG__CPUID_NO_SUBLEAF, MIG__REG_EDX, 20},
        {"xsaveopt", 0xd, 1, MIG__REG_EAX, 0},
        {"avx2", 7, 0, MIG__REG_EBX, 5},
        {"bmi2", 7, 0, MIG__REG_EBX, 8},
        {"avx512-vnni", 7, 0, MIG__REG_ECX, 11},
        {"md_clear", 7, 0, MIG__REG_EDX, 10},
        {"avx512-bf16", 7, 1, MIG__REG_EAX, 5},
        {"itsc", 0x80000007, MIG__CPUID_NO_SUBLEAF, MIG__REG_EDX, 8},
        {"clzero", 0x80000008, MIG__CPUID_NO_SUBLEAF, MIG__REG_EBX, 0},
        {"intel-psfd", 7, 2, MIG__REG_EDX, 0},
        {"lfence-dispatch", 0x80000021, MIG__CPUID_NO_SUBLEAF, MIG__REG_EAX, 2},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int idx = mig__cpuid_lookup(want[i].name);
        assert_true(idx >= 0);
        const struct mig__cpuid_feat *f = mig__cpuid_at((size_t)idx);
        assert_int_equal(f->leaf, want[i].leaf);
        assert_int_equal(f->subleaf, want[i].subleaf);
        assert_int_equal(f->reg, want[i].reg);
        assert_int_equal(f->bit, want[i].bit);
    }
    /* Names unique, canonical, bits unique. */
    for (size_t i = 0; i < mig__cpuid_count(); i++) {
        const struct mig__cpuid_feat *a = mig__cpuid_at(i);
        char canon[64];
        mig__cpuid_canon(a->name, canon, sizeof(canon));
        assert_string_equal(canon, a->name);
        for (size_t j = i + 1; j < mig__cpuid_count(); j++) {
            assert_string_not_equal(a->name, mig__cpuid_at(j)->name);
            assert_int_not_equal(a->xen_bit, mig__cpuid_at(j)->xen_bit);
        }
    }
    assert_null(mig__cpuid_at(mig__cpuid_count()));
    assert_int_equal(mig__cpuid_lookup("no-such-feature"), -1);
    assert_int_equal(mig__cpuid_lookup("SSE4.1"), mig__cpuid_lookup("sse4-1"));
    assert_string_equal(mig__cpuid_closest("avx5l2f"), "avx512f");
    char d[96];
    mig__cpuid_describe(mig__cpuid_at((size_t)mig__cpuid_lookup("sse3")), d, sizeof(d));
    assert_string_equal(d, "leaf 0x1 ecx bit 0");
}

static void helpers(void **state)
{
    assert_int_equal(mig__edit_distance("vendor", "vendr", 3), 1);
    assert_int_equal(mig__edit_distance("", "abc", 3), 3);
    assert_int_equal(mig__edit_distance("abcdef", "uvwxyz", 2), 3);
    static const char *const c[] = {"vendor", "features", "mask", NULL};
    assert_string_equal(mig__closest("featurs", c), "features");
    assert_null(mig__closest("completely-else", c));
    struct mig__version a, b;
    assert_true(mig__version_parse("4.17.2-pre", &a));
    assert_true(mig__version_parse("4.17", &b));
    assert_int_equal(mig__version_cmp(&a, &b), 1);
    assert_false(mig__version_parse("x4", &a));
    assert_int_equal(mig__vendor_parse("AuthenticAMD"), MIG__VENDOR_AMD);
    assert_int_equal(mig__vendor_parse("CentaurHauls"), MIG__VENDOR_OTHER);
}

static void facts_parser(void **state)
{
    struct mig__facts *f = NULL;
    struct mig__perr err = {{0}};
    char *s = slurp(FX("src-v2-guest.json"));
    assert_int_equal(mig__facts_parse(s, strlen(s), "f", &f, &err), 0);
    assert_string_equal(f->hostname, "src01");
    assert_string_equal(f->xen_version, "4.17.0");
    assert_string_equal(f->cpu_vendor, "GenuineIntel");
    assert_true(f->has_guest);
    assert_int_equal(f->guest.mem_bytes, 2ull << 30);
    assert_int_equal(f->guest.vcpus, 2);
    assert_int_equal(f->guest.disks.n, 2);
    assert_true(f->has_tsc_scaling && f->tsc_scaling);
    assert_int_equal(f->total_memory_bytes, 64ull << 30);
    mig__facts_free(f);
    free(s);
    /* The sim backend's own facts (no facts.json): unknown keys are fine. */
    static const char sim[] = "{\"backend\":\"sim\",\"hostname\":\"h\",\"kernel\":\"6.1\","
                              "\"mem_total_bytes\":1,\"page_size\":4096,\"x\":{\"y\":[1]}}";
    assert_int_equal(mig__facts_parse(sim, strlen(sim), "f", &f, &err), 0);
    assert_false(f->has_cpu);
    assert_false(f->has_guest);
    mig__facts_free(f);
    /* nulls count as absent; escapes decode. */
    static const char nul[] = "{\"xen_version\":null,\"hostname\":\"a\\u0041\\/b\"}";
    assert_int_equal(mig__facts_parse(nul, strlen(nul), "f", &f, &err), 0);
    assert_null(f->xen_version);
    assert_string_equal(f->hostname, "aA/b");
    mig__facts_free(f);
    static const struct {
        const char *json, *err;
    } bad[] = {
        {"{\"free_memory_bytes\":-1}", "f:1:22: free_memory_bytes must be a non-negative integer, "
                                       "not '-1'"},
        {"{\"free_memory_bytes\":99999999999999999999}",
         "f:1:22: free_memory_bytes is out of range (more than 2^64 - 1)"},
        {"{\"cpu\":{\"features\":\"sse2\"}}", "f:1:20: cpu.features must be a list of strings"},
        {"{\"cpu\":[]}", "f:1:8: cpu must be an object"},
        {"{\"tsc_scaling\":\"yes\"}", "f:1:16: tsc_scaling must be true or false"},
        {"{\"guest\":{\"vcpus\":100000}}", "f:1:19: guest.vcpus is out of range (0-4096)"},
        {"{\"guest\":{\"disks\":[{}]}}", "f:1:20: guest.disks: each item must be a string"},
        {"{\"a\":1,\"a\":2}", "f:1:8: duplicate key 'a' (first at line 1, column 2)"},
        {"{\"s\":\"a\\u0000b\"}", "f:1:6: value contains a NUL character"},
        {"\"just a string\"", "f:1:1: facts must be a JSON object, not a scalar"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(mig__facts_parse(bad[i].json, strlen(bad[i].json), "f", &f, &err),
                         -MIG_EPARSE);
        assert_null(f);
        assert_string_equal(err.msg, bad[i].err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identical_hosts_pass),
        cmocka_unit_test(destination_lacks_feature),
        cmocka_unit_test(baseline_guest_on_richer_destination),
        cmocka_unit_test(guest_outside_baseline),
        cmocka_unit_test(destination_below_baseline_warns),
        cmocka_unit_test(vendor_mismatch),
        cmocka_unit_test(xen_older_than_profile),
        cmocka_unit_test(passthrough_refused),
        cmocka_unit_test(too_little_memory),
        cmocka_unit_test(missing_bridge),
        cmocka_unit_test(missing_disk_target),
        cmocka_unit_test(profile_rules_on_host_caps),
        cmocka_unit_test(facts_without_guest_or_unreadable),
        cmocka_unit_test(public_api),
        cmocka_unit_test(session_helper),
        cmocka_unit_test(hostile_facts_strings),
        cmocka_unit_test(shipped_profiles_parse),
        cmocka_unit_test(full_profile_parses),
        cmocka_unit_test(malformed_profiles),
        cmocka_unit_test(hostile_inputs),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(resolve_names),
        cmocka_unit_test(render_cpuid),
        cmocka_unit_test(cpuid_table),
        cmocka_unit_test(helpers),
        cmocka_unit_test(facts_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
