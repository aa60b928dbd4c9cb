/*
 * api.c: the exported profile API (libmig/include/libmig/profile.h), thin
 * wrappers over profile.c and check.c for the command.
 * Entry points: mig_profile_load(), mig_profile_render_cpuid(),
 * mig_preflight_check().
 */
#include <config.h>

#define MIG_LOG_MODULE "profile"

#include <stdlib.h>
#include <string.h>

#include <libmig/profile.h>

#include "profile-internal.h"


int mig_profile_load(struct mig_ctx *ctx, const char *name_or_path, struct mig_profile **p_out,
                     char **err_out)
{
    struct mig_profile *wrap = NULL;
    struct mig__profile *p = NULL;
    struct mig__perr err = {{0}};
    char *path = NULL;
    int rc;

    *p_out = NULL;
    if (err_out)
        *err_out = NULL;
    rc = mig__profile_resolve(name_or_path, &path);
    if (rc == -MIG_EINVAL)
        mig__perr_set(&err, name_or_path, 0, 0,
                      "not a profile name (letters, digits, '-', '_', '.') nor a path");
    if (rc < 0)
        goto out;
    rc = mig__profile_load_file(path, &p, &err);
    if (rc < 0)
        goto out;
    wrap = calloc(1, sizeof(*wrap));
    if (!wrap) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    wrap->p = p;
    p = NULL;
    MIG_LOG(ctx, DEBUG, "profile %s loaded from %s", wrap->p->name, path);
    *p_out = wrap;
out:
    if (rc < 0 && err_out && err.msg[0])
        *err_out = strdup(err.msg);
    mig__profile_free(p);
    free(path);
    return rc;
}

void mig_profile_free(struct mig_profile *p)
{
    if (!p)
        return;
    mig__profile_free(p->p);
    free(p);
}

const char *mig_profile_name(const struct mig_profile *p)
{
    return p->p->name;
}

const char *mig_profile_path(const struct mig_profile *p)
{
    return p->p->path;
}

int mig_profile_render_cpuid(const struct mig_profile *p, const char *xen_version,
                             char **cpuid_out, char **skipped_out)
{
    return mig__profile_render_cpuid(p->p, xen_version, cpuid_out, skipped_out);
}

int mig_preflight_check(struct mig_ctx *ctx, const char *src_facts, const char *dst_facts,
                        const struct mig_profile *p, bool json, char **report_out)
{
    struct mig__verdict *v = NULL;
    *report_out = NULL;
    int rc = mig__preflight(ctx, src_facts, dst_facts, p ? p->p : NULL, NULL, &v);
    if (!v)
        return rc;
    int frc = mig__verdict_format(v, json ? MIG__VERDICT_JSON : MIG__VERDICT_TEXT, report_out);
    mig__verdict_free(v);
    return frc < 0 ? frc : rc;
}

int mig__preflight_run(struct mig_ctx *ctx, const char *profile_ref, const char *src_facts_json,
                       const char *dst_facts_json, const struct mig__preflight_maps *maps,
                       char **why_out, char **json_out)
{
    struct mig_profile *p = NULL;
    struct mig__verdict *v = NULL;
    int rc;

    *why_out = NULL;
    if (json_out)
        *json_out = NULL;
    if (profile_ref) {
        rc = mig_profile_load(ctx, profile_ref, &p, why_out);
        if (rc < 0)
            goto out;
    }
    rc = mig__preflight(ctx, src_facts_json, dst_facts_json, p ? p->p : NULL, maps, &v);
    if (!v)
        goto out;
    for (size_t i = 0; i < v->n; i++) {
        if (v->issues[i].severity == MIG__SEV_ERROR)
            MIG_LOG(ctx, ERROR, "pre-flight: %s (%s)", v->issues[i].message, v->issues[i].rule);
        else
            MIG_LOG(ctx, WARN, "pre-flight: %s (%s)", v->issues[i].message, v->issues[i].rule);
    }
    int frc = mig__verdict_format(v, MIG__VERDICT_TEXT, why_out);
    if (frc == 0 && json_out)
        frc = mig__verdict_format(v, MIG__VERDICT_JSON, json_out);
    if (frc < 0)
        rc = frc;
out:
    mig__verdict_free(v);
    mig_profile_free(p);
    return rc;
}
