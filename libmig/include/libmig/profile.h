/*
 * profile.h: compatibility profiles and the pre-flight check (docs/profiles.md).
 *
 * A profile is a named baseline for a pool of hosts (CPU vendor and features,
 * Xen versions, virtualization capabilities, what forbids migration). Load
 * one with mig_profile_load(), print the xl.cfg cpuid= that boots guests
 * inside it with mig_profile_render_cpuid(), and check two hosts' facts
 * (mig_host_facts(), the FACTS record) with mig_preflight_check().
 */
#ifndef LIBMIG_PROFILE_H
#define LIBMIG_PROFILE_H

#include <stdbool.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mig_profile;

/*
 * Load a profile: a NAME is $MIG_PROFILE_DIR/configs/profiles/NAME.yaml when
 * that variable is set, else /etc/migrate-live/profiles/NAME.yaml; anything
 * with a '/' or ending in .yaml/.yml is a file path. Files over 1 MiB are
 * refused before parsing. On failure *err_out (caller frees; may be NULL on
 * -MIG_ENOMEM) says "FILE:LINE:COLUMN: what is wrong". Caller frees the
 * profile with mig_profile_free(). -MIG_EPARSE, -MIG_ETOOBIG, -MIG_ENOENT...
 */
MIG_EXPORT int mig_profile_load(struct mig_ctx *ctx, const char *name_or_path,
                                struct mig_profile **p_out, char **err_out);
MIG_EXPORT void mig_profile_free(struct mig_profile *p); /* NULL-safe */
/* The profile's name and the file it came from; borrowed. */
MIG_EXPORT const char *mig_profile_name(const struct mig_profile *p);
MIG_EXPORT const char *mig_profile_path(const struct mig_profile *p);
/* xl.cfg cpuid= value ("host,avx512f=0,...") that keeps a guest inside the
 * profile's baseline, for the xl of Xen 'xen_version' ("4.17"; NULL: 4.17,
 * which every later xl also reads). Before Xen 4.18 xl cannot name some
 * features; they are left out and listed, space-separated, in *skipped_out
 * ("" if none; pass NULL to ignore). Caller frees both strings. */
MIG_EXPORT int mig_profile_render_cpuid(const struct mig_profile *p, const char *xen_version,
                                        char **cpuid_out, char **skipped_out);

/*
 * Check whether the guest in src_facts (its "guest" member) can move to the
 * host of dst_facts under profile p (NULL: fact-level rules only). Both are
 * facts JSON texts. *report_out (caller frees) is the verdict, for humans
 * or, with 'json', as one JSON object. 0: compatible; -MIG_EINCOMPAT: the
 * report lists why not; -MIG_EPARSE: a facts text is unreadable (the report
 * says where).
 */
MIG_EXPORT int mig_preflight_check(struct mig_ctx *ctx, const char *src_facts,
                                   const char *dst_facts, const struct mig_profile *p, bool json,
                                   char **report_out);

#ifdef __cplusplus
}
#endif
#endif
