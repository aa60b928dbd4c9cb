/*
 * fuzz-profile.c: libFuzzer target for what the profile module parses:
 * profile YAML (an operator's file) and facts JSON (sent by the peer before
 * any page moves). The first input byte picks the mode; the rest is text.
 *   mode % 3 == 0: profile YAML -> parse, then render cpuid= both ways
 *   mode % 3 == 1: facts JSON -> parse
 *   mode % 3 == 2: pre-flight: the text is the destination's facts (or
 *                  source facts, then "\n\x00\n", then destination facts),
 *                  checked against a fixed guest and profile; the verdict
 *                  is rendered as text and JSON
 * Build: make fuzz-profile; run: tests/fuzz/run-fuzz-profile.sh.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmig/src/profile/profile-internal.h"

static const char profile_yaml[] =
    "name: fuzz\n"
    "cpu: {vendor: intel, features: [fpu, sse, sse2, lm, cx16, sse4_2, avx2], mask: [avx2]}\n"
    "xen: {min_version: \"4.16\", max_version: \"4.20\"}\n"
    "virt_caps: [hvm, hap]\n"
    "tsc_scaling: required\n"
    "forbid: {passthrough: true, nested_hvm: false}\n";

static const char src_facts[] =
    "{\"hostname\":\"s\",\"xen_version\":\"4.17.0\",\"cpu\":{\"vendor\":\"GenuineIntel\","
    "\"features\":[\"sse2\",\"avx512f\",\"x2apic\"]},\"guest\":{\"name\":\"g\",\"mem_bytes\":"
    "1073741824,\"max_mem_bytes\":2147483648,\"cpu_features\":[\"sse2\",\"cx16\",\"avx2\","
    "\"md-clear\",\"newfeature\"],\"passthrough\":false,\"nested_hvm\":true,\"pod\":true,"
    "\"bridges\":[\"xenbr0\"],\"disks\":[\"/var/lib/xen/images/g.img\"]}}";

static void render(const struct mig__verdict *v)
{
    char *out = NULL;
    if (mig__verdict_format(v, MIG__VERDICT_TEXT, &out) == 0)
        free(out);
    out = NULL;
    if (mig__verdict_format(v, MIG__VERDICT_JSON, &out) == 0) {
        /* Our JSON must read back through our own parser. */
        struct mig__ynode *root = NULL;
        struct mig__perr err;
        if (mig__yaml_parse(out, strlen(out), "verdict", &root, &err) != 0)
            abort();
        mig__ynode_free(root);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mig__profile *fixed; /* parsed once, for mode 2 */
    struct mig__perr err = {{0}};
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    if (!fixed && mig__profile_parse(profile_yaml, sizeof(profile_yaml) - 1, "fixed", &fixed,
                                     &err) != 0)
        abort();
    if (mode == 0) {
        struct mig__profile *p = NULL;
        if (mig__profile_parse(text, len, "fuzz.yaml", &p, &err) == 0) {
            char *s = NULL, *sk = NULL;
            if (mig__profile_render_cpuid(p, NULL, &s, &sk) == 0) {
                free(s);
                free(sk);
            }
            if (mig__profile_render_cpuid(p, "4.18", &s, NULL) == 0)
                free(s);
            mig__profile_free(p);
        } else if (strncmp(err.msg, "fuzz.yaml:", 10) != 0) {
            abort(); /* every error names file:line:column */
        }
        return 0;
    }
    if (mode == 1) {
        struct mig__facts *f = NULL;
        if (mig__facts_parse(text, len, "facts", &f, &err) == 0)
            mig__facts_free(f);
        return 0;
    }
    /* The check takes NUL-terminated texts. */
    char *buf = malloc(len + 1);
    if (!buf)
        return 0;
    memcpy(buf, text, len);
    buf[len] = '\0';
    const char *src = src_facts, *dst = buf;
    char *sep = len >= 3 ? memmem(buf, len, "\n\0\n", 3) : NULL;
    if (sep) {
        src = buf;
        dst = sep + 3;
    }
    struct mig__map_pair disks[] = {{"/var/lib/xen/images/g.img", "/srv/g.img"}};
    struct mig__map_pair nets[] = {{"xenbr0", "br0"}};
    struct mig__preflight_maps maps = {disks, 1, nets, 1};
    for (int withp = 0; withp < 2; withp++) {
        struct mig__verdict *v = NULL;
        int rc = mig__preflight(NULL, src, dst, withp ? fixed : NULL, withp ? &maps : NULL, &v);
        if (!v && rc != -MIG_ENOMEM)
            abort();
        if (v) {
            if ((rc == 0) != mig__verdict_ok(v) && rc != -MIG_EPARSE)
                abort();
            render(v);
            mig__verdict_free(v);
        }
    }
    free(buf);
    return 0;
}
