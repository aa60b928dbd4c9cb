/*
 * cpuid.c: the CPUID features migrate-live knows, by Xen's name.
 *
 * Written once from xen/include/public/arch-x86/cpufeatureset.h (Xen 4.17):
 * each XEN_CPUFEATURE(NAME, WORD*32+BIT) is one row; the word says which
 * leaf/subleaf/register holds it (WLEAF/WSUB/WREG below, from the header's
 * comments). Names are spelled as Xen's gen-cpuid.py makes them for
 * xen-cpuid and for xl.cfg cpuid= since Xen 4.18: lower case, '_' -> '-'.
 * The second column is the name libxl's own table accepts in cpuid= before
 * 4.18 (Debian 12 ships 4.17), where it differs or exists at all.
 * Entry points: mig__cpuid_lookup(), mig__cpuid_at(), mig__cpuid_canon().
 */
#include <config.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "profile-internal.h"

#define NS MIG__CPUID_NO_SUBLEAF
/* Featureset word -> where its 32 bits live (cpufeatureset.h's comments):
 * 0: 1.edx, 1: 1.ecx, 2: e1.edx, 3: e1.ecx, 4: 0xd:1.eax, 5: 7:0.ebx,
 * 6: 7:0.ecx, 7: e7.edx, 8: e8.ebx, 9: 7:0.edx, 10: 7:1.eax, 11: e21.eax,
 * 13: 7:2.edx. Constant expressions, so the table below is const data. */
#define WLEAF(w)                                                                          \
    ((w) <= 1 ? 0x00000001u : (w) <= 3 ? 0x80000001u : (w) == 4 ? 0x0000000du             \
     : (w) == 7 ? 0x80000007u : (w) == 8 ? 0x80000008u : (w) == 11 ? 0x80000021u           \
                                                                     : 0x00000007u)
#define WSUB(w)                                                                           \
    ((w) <= 3 || (w) == 7 || (w) == 8 || (w) == 11 ? NS                                    \
     : (w) == 4 || (w) == 10                       ? 1u                                    \
     : (w) == 13                                   ? 2u                                    \
                                                   : 0u)
#define WREG(w)                                                                           \
    ((w) == 0 || (w) == 2 || (w) == 7 || (w) == 9 || (w) == 13 ? MIG__REG_EDX              \
     : (w) == 1 || (w) == 3 || (w) == 6                        ? MIG__REG_ECX              \
     : (w) == 5 || (w) == 8                                    ? MIG__REG_EBX              \
                                                               : MIG__REG_EAX)

/* F: libxl's legacy table spells it like Xen; FX: it spells it 'xl';
 * FN: only Xen >= 4.18 takes it in cpuid=. */
#define FX(name, xl, w, b) {name, xl, WLEAF(w), WSUB(w), WREG(w), b, (w) * 32 + (b)}
#define F(name, w, b) FX(name, name, w, b)
#define FN(name, w, b) FX(name, NULL, w, b)
static const struct mig__cpuid_feat rows[] = {
    /* 0x00000001.edx, word 0 */
    F("fpu", 0, 0), F("vme", 0, 1), F("de", 0, 2), F("pse", 0, 3),
    F("tsc", 0, 4), F("msr", 0, 5), F("pae", 0, 6), F("mce", 0, 7),
    FX("cx8", "cmpxchg8", 0, 8), F("apic", 0, 9), FX("sep", "sysenter", 0, 11),
    F("mtrr", 0, 12), F("pge", 0, 13), F("mca", 0, 14),
    F("cmov", 0, 15), F("pat", 0, 16), F("pse36", 0, 17),
    FX("clflush", "clfsh", 0, 19), F("ds", 0, 21), F("acpi", 0, 22),
    F("mmx", 0, 23), F("fxsr", 0, 24), F("sse", 0, 25),
    F("sse2", 0, 26), F("ss", 0, 27), F("htt", 0, 28), FX("tm1", "tm", 0, 29),
    F("pbe", 0, 31),
    /* 0x00000001.ecx, word 1 */
    F("sse3", 1, 0), F("pclmulqdq", 1, 1), F("dtes64", 1, 2),
    F("monitor", 1, 3), F("dscpl", 1, 4), F("vmx", 1, 5),
    F("smx", 1, 6), FX("eist", "est", 1, 7), F("tm2", 1, 8),
    F("ssse3", 1, 9), F("fma", 1, 12), FX("cx16", "cmpxchg16", 1, 13),
    F("xtpr", 1, 14), F("pdcm", 1, 15), F("pcid", 1, 17),
    F("dca", 1, 18), FX("sse4-1", "sse4_1", 1, 19), FX("sse4-2", "sse4_2", 1, 20),
    F("x2apic", 1, 21), F("movbe", 1, 22), F("popcnt", 1, 23),
    F("tsc-deadline", 1, 24), FX("aesni", "aes", 1, 25), F("xsave", 1, 26),
    F("osxsave", 1, 27), F("avx", 1, 28), F("f16c", 1, 29),
    F("rdrand", 1, 30), F("hypervisor", 1, 31),
    /* 0x80000001.edx, word 2 */
    F("syscall", 2, 11), F("nx", 2, 20), F("mmxext", 2, 22),
    F("ffxsr", 2, 25), F("page1gb", 2, 26), F("rdtscp", 2, 27),
    F("lm", 2, 29), F("3dnowext", 2, 30), F("3dnow", 2, 31),
    /* 0x80000001.ecx, word 3 */
    FX("lahf-lm", "lahfsahf", 3, 0), FX("cmp-legacy", "cmplegacy", 3, 1), F("svm", 3, 2),
    F("extapic", 3, 3), FX("cr8-legacy", "altmovcr8", 3, 4), F("abm", 3, 5),
    F("sse4a", 3, 6), F("misalignsse", 3, 7), F("3dnowprefetch", 3, 8),
    F("osvw", 3, 9), F("ibs", 3, 10), F("xop", 3, 11),
    F("skinit", 3, 12), F("wdt", 3, 13), F("lwp", 3, 15),
    F("fma4", 3, 16), FX("nodeid-msr", "nodeid", 3, 19), F("tbm", 3, 21),
    F("topoext", 3, 22), FN("dbext", 3, 26), FN("monitorx", 3, 29),
    /* 0x0000000d:1.eax, word 4 */
    FN("xsaveopt", 4, 0), FN("xsavec", 4, 1), FN("xgetbv1", 4, 2),
    FN("xsaves", 4, 3),
    /* 0x00000007:0.ebx, word 5 */
    F("fsgsbase", 5, 0), FX("tsc-adjust", "tsc_adjust", 5, 1), FN("sgx", 5, 2),
    F("bmi1", 5, 3), F("hle", 5, 4), F("avx2", 5, 5),
    FN("fdp-excp-only", 5, 6), F("smep", 5, 7), F("bmi2", 5, 8),
    F("erms", 5, 9), F("invpcid", 5, 10), F("rtm", 5, 11),
    FX("pqm", "cmt", 5, 12), FN("no-fpu-sel", 5, 13), F("mpx", 5, 14),
    FN("pqe", 5, 15), F("avx512f", 5, 16), F("avx512dq", 5, 17),
    F("rdseed", 5, 18), F("adx", 5, 19), F("smap", 5, 20),
    F("avx512-ifma", 5, 21), F("clflushopt", 5, 23), F("clwb", 5, 24),
    F("avx512pf", 5, 26), F("avx512er", 5, 27), F("avx512cd", 5, 28),
    F("sha", 5, 29), F("avx512bw", 5, 30), F("avx512vl", 5, 31),
    /* 0x00000007:0.ecx, word 6 */
    F("prefetchwt1", 6, 0), F("avx512-vbmi", 6, 1), F("umip", 6, 2),
    F("pku", 6, 3), F("ospke", 6, 4), F("avx512-vbmi2", 6, 6),
    F("cet-ss", 6, 7), F("gfni", 6, 8), F("vaes", 6, 9),
    F("vpclmulqdq", 6, 10), F("avx512-vnni", 6, 11),
    F("avx512-bitalg", 6, 12), F("avx512-vpopcntdq", 6, 14),
    F("rdpid", 6, 22), F("cldemote", 6, 25), FN("movdiri", 6, 27),
    FN("movdir64b", 6, 28), FN("enqcmd", 6, 29),
    /* 0x80000007.edx, word 7 */
    FX("itsc", "invtsc", 7, 8), FN("efro", 7, 10),
    /* 0x80000008.ebx, word 8 */
    F("clzero", 8, 0), F("rstr-fp-err-ptrs", 8, 2), F("wbnoinvd", 8, 9),
    F("ibpb", 8, 12), FN("ibrs", 8, 14), FN("amd-stibp", 8, 15),
    FN("ibrs-always", 8, 16), FN("stibp-always", 8, 17), FN("ibrs-fast", 8, 18),
    FN("ibrs-same-mode", 8, 19), FX("amd-ppin", "ppin", 8, 23), FN("amd-ssbd", 8, 24),
    FN("virt-ssbd", 8, 25), FN("ssb-no", 8, 26), FN("psfd", 8, 28),
    FN("btc-no", 8, 29), FN("ibpb-ret", 8, 30),
    /* 0x00000007:0.edx, word 9 */
    F("avx512-4vnniw", 9, 2), F("avx512-4fmaps", 9, 3),
    FN("srbds-ctrl", 9, 9), F("md-clear", 9, 10), FN("rtm-always-abort", 9, 11),
    FN("tsx-force-abort", 9, 13), FN("serialize", 9, 14), FN("tsxldtrk", 9, 16),
    F("cet-ibt", 9, 20), F("ibrsb", 9, 26), F("stibp", 9, 27),
    F("l1d-flush", 9, 28), F("arch-caps", 9, 29), F("core-caps", 9, 30),
    F("ssbd", 9, 31),
    /* 0x00000007:1.eax, word 10 */
    F("avx512-bf16", 10, 5),
    /* 0x80000021.eax, word 11 */
    FN("lfence-dispatch", 11, 2),
    /* 0x00000007:2.edx, word 13 */
    FN("intel-psfd", 13, 0),
};
#undef F
#undef FX
#undef FN
#undef WLEAF
#undef WSUB
#undef WREG
#undef NS

#define NROWS (sizeof(rows) / sizeof(rows[0]))
_Static_assert(NROWS <= MIG__CPUID_MAX_FEATS, "feature table larger than a featset");

/* Other spellings users meet: libxl's legacy table, Linux /proc/cpuinfo, the
 * psABI. Keys are canonical (lower case, '-'). */
static const struct {
    const char *alias;
    const char *name;
} aliases[] = {
    {"cmpxchg8", "cx8"},      {"sysenter", "sep"},      {"clfsh", "clflush"},
    {"tm", "tm1"},            {"est", "eist"},          {"cmpxchg16", "cx16"},
    {"aes", "aesni"},         {"lahfsahf", "lahf-lm"},  {"cmplegacy", "cmp-legacy"},
    {"altmovcr8", "cr8-legacy"}, {"nodeid", "nodeid-msr"},
    {"cmt", "pqm"},           {"invtsc", "itsc"},       {"ppin", "amd-ppin"},
    {"lzcnt", "abm"},         {"pni", "sse3"},
};

size_t mig__cpuid_count(void)
{
    return NROWS;
}

const struct mig__cpuid_feat *mig__cpuid_at(size_t i)
{
    return i < NROWS ? &rows[i] : NULL;
}

void mig__cpuid_canon(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    if (!cap)
        return;
    for (; name[i] && i + 1 < cap; i++) {
        char c = (char)tolower((unsigned char)name[i]);
        out[i] = (c == '_' || c == '.') ? '-' : c;
    }
    out[i] = '\0';
    for (size_t a = 0; a < sizeof(aliases) / sizeof(aliases[0]); a++) {
        if (strcmp(out, aliases[a].alias) == 0) {
            snprintf(out, cap, "%s", aliases[a].name);
            return;
        }
    }
}

int mig__cpuid_lookup(const char *name)
{
    char canon[64];
    if (strlen(name) >= sizeof(canon))
        return -1;
    mig__cpuid_canon(name, canon, sizeof(canon));
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, canon) == 0)
            return (int)i;
    return -1;
}

/* Features that describe the platform, its mitigations or what the OS
 * turned on (Xen manages them: '!' in cpufeatureset.h, and the speculation
 * controls) rather than instructions a program picks at startup. A profile
 * neither hides nor requires them unless it masks them; the fact-level
 * check (guest subset of destination) still covers them. */
static const char *const platform[] = {
    "apic", "htt", "x2apic", "osxsave", "ospke", "hypervisor", "cmp-legacy",
    "fdp-excp-only", "no-fpu-sel", "ibpb", "ibrs", "amd-stibp", "ibrs-always",
    "stibp-always", "ibrs-fast", "ibrs-same-mode", "amd-ssbd", "virt-ssbd", "ssb-no",
    "psfd", "btc-no", "ibpb-ret", "srbds-ctrl", "md-clear", "rtm-always-abort",
    "tsx-force-abort", "ibrsb", "stibp", "l1d-flush", "arch-caps", "core-caps", "ssbd",
    "lfence-dispatch", "intel-psfd", NULL,
};

bool mig__cpuid_is_platform(size_t i)
{
    if (i >= NROWS)
        return false;
    for (size_t k = 0; platform[k]; k++)
        if (strcmp(platform[k], rows[i].name) == 0)
            return true;
    return false;
}

const char *mig__cpuid_reg_name(enum mig__cpuid_reg r)
{
    static const char *const names[] = {"eax", "ebx", "ecx", "edx"};
    return (unsigned)r < 4 ? names[r] : "?";
}

void mig__cpuid_describe(const struct mig__cpuid_feat *f, char *out, size_t cap)
{
    if (f->subleaf == MIG__CPUID_NO_SUBLEAF)
        snprintf(out, cap, "leaf 0x%x %s bit %u", f->leaf, mig__cpuid_reg_name(f->reg), f->bit);
    else
        snprintf(out, cap, "leaf 0x%x subleaf %u %s bit %u", f->leaf, f->subleaf,
                 mig__cpuid_reg_name(f->reg), f->bit);
}

const char *mig__cpuid_closest(const char *name)
{
    const char *cands[NROWS + 1];
    char canon[64];
    if (strlen(name) >= sizeof(canon))
        return NULL;
    mig__cpuid_canon(name, canon, sizeof(canon));
    for (size_t i = 0; i < NROWS; i++)
        cands[i] = rows[i].name;
    cands[NROWS] = NULL;
    return mig__closest(canon, cands);
}
