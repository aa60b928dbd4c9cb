/*
 * image.c: 'xl-migrate-live inspect FILE' (what a Xen save image holds, ours
 * or stock `xl save`'s, as our parser reads it) and 'xl-migrate-live save
 * DOMAIN FILE' (an image stock `xl restore` accepts; the domain is destroyed
 * once the image is complete, as `xl save` does). Entry point:
 * xlml_image_main (argv[0] of the subcommand in c->pos[0]).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libmig/image.h>

#include "cli.h"

int xlml_image_main(struct cli *c, struct mig_ctx *ctx);

static void print_info(const struct cli *c, const char *file, const struct mig_image_info *i)
{
    if (c->json) {
        printf("{\"file\":");
        json_str(stdout, file);
        printf(",\"xl_header\":%s,\"xl_flags\":%" PRIu32 ",\"config_bytes\":%" PRIu32 ",\"name\":",
               i->xl_header ? "true" : "false", i->xl_flags, i->config_len);
        json_str(stdout, i->name);
        printf(",\"libxc_version\":%" PRIu32 ",\"xen\":\"%" PRIu32 ".%" PRIu32 "\""
               ",\"pages\":%" PRIu64 ",\"data_pages\":%" PRIu64 ",\"cpuid_leaves\":%" PRIu32
               ",\"msr_entries\":%" PRIu32 ",\"hvm_context_bytes\":%" PRIu32
               ",\"hvm_params\":%" PRIu32 ",\"tsc_info\":%s,\"records\":%" PRIu32 "}\n",
               i->libxc_version, i->xen_major, i->xen_minor, i->pages, i->data_pages,
               i->cpuid_leaves, i->msr_entries, i->hvm_context_len, i->hvm_params,
               i->tsc_info ? "true" : "false", i->records);
        return;
    }
    printf("%s: Xen save image, domain '%s', x86 HVM/PVH, libxc stream v%" PRIu32
           " from Xen %" PRIu32 ".%" PRIu32 "\n",
           file, i->name[0] ? i->name : "?", i->libxc_version, i->xen_major, i->xen_minor);
    if (i->xl_header)
        printf("  xl header       flags %#" PRIx32 ", %" PRIu32 " bytes of configuration\n",
               i->xl_flags, i->config_len);
    else
        printf("  xl header       none (a bare libxl stream)\n");
    printf("  pages           %" PRIu64 " (%" PRIu64 " with data, %" PRIu64 " MiB)\n", i->pages,
           i->data_pages, i->data_pages * 4096 >> 20);
    printf("  CPU policy      %" PRIu32 " CPUID leaves, %" PRIu32 " MSRs\n", i->cpuid_leaves,
           i->msr_entries);
    printf("  vCPU state      %" PRIu32 " bytes of HVM context, %" PRIu32
           " HVM params, TSC info %s\n",
           i->hvm_context_len, i->hvm_params, i->tsc_info ? "yes" : "no");
    printf("  records         %" PRIu32 "\n", i->records);
}

static int inspect(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_image_info info;
    if (c->npos != 2)
        return usage_error("usage: xl-migrate-live inspect FILE");
    const char *file = c->pos[1];
    int fd = strcmp(file, "-") == 0 ? 0 : open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "xl-migrate-live: %s: %s\n", file, strerror(errno));
        return EXIT_FAILED;
    }
    int rc = mig_image_inspect(ctx, fd, &info);
    if (fd != 0)
        close(fd);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live: %s: not an image we accept: %s\n", file,
                mig_strerror(rc));
        return EXIT_FAILED;
    }
    print_info(c, file, &info);
    return EXIT_OK;
}

static int save(struct cli *c, struct mig_ctx *ctx)
{
    if (c->npos != 3)
        return usage_error("usage: xl-migrate-live save DOMAIN FILE");
    const char *dom = c->pos[1], *file = c->pos[2];
    char key[256];
    /* the lock a migration of the same domain takes (its URI) */
    snprintf(key, sizeof(key), "%s%s", strncmp(dom, "xen:", 4) ? "xen:" : "", dom);
    int lock_fd = lock_domain(c->mp.state_dir, key);
    if (lock_fd < 0)
        return lock_fd == -2 ? EXIT_LOCKED : EXIT_FAILED;
    /* never over an existing file: it may be the only copy of another guest */
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "xl-migrate-live: %s: %s\n", file, strerror(errno));
        close(lock_fd);
        return EXIT_FAILED;
    }
    int rc = mig_image_save(ctx, dom, fd);
    /* after a success the image is the domain (fsync'ed): never removed */
    if (close(fd) < 0 && rc == 0)
        fprintf(stderr, "xl-migrate-live: closing %s: %s\n", file, strerror(errno));
    if (rc < 0) {
        unlink(file);
        fprintf(stderr, "xl-migrate-live: saving %s failed (%s); it keeps running\n", dom,
                mig_strerror(rc));
    } else {
        printf("%s saved to %s (restore with: xl restore %s)\n", dom, file, file);
    }
    close(lock_fd);
    return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

int xlml_image_main(struct cli *c, struct mig_ctx *ctx)
{
    if (strcmp(c->pos[0], "inspect") == 0)
        return inspect(c, ctx);
    return save(c, ctx);
}
