/*
 * sim-ram.c: a test-guest host's own memory (simhost --mem SIZE), the
 * stand-in for the memory a Xen hypervisor owns.
 *
 * Without it each guest's memory is a new memfd whose pages the kernel
 * allocates and clears on their first touch; in a VM (these CI machines)
 * that first touch costs about 1 us per page, which made a destination
 * guest's memory, not the migration, the bottleneck of every copy. With it
 * the host allocates SIZE once at start (one file, every page populated:
 * on a private tmpfs of 2 MiB pages when it may mount one, see huge_file(),
 * else a memfd) and carves each guest's memory out of it, as Xen hands a
 * domain pages from its heap: a guest is an extent [off, off + bytes) of
 * the host's file, a guest that goes gives its extent back, and the extent is
 * cleared (scrubbed, as Xen scrubs freed pages) by a thread of its own
 * before anyone gets it again. A host that has no free extent large enough
 * refuses the guest (-MIG_ENOSPC), as Xen refuses a domain it cannot hold.
 *
 * Thread safety: every call may come from any thread; one mutex guards
 * the lists. Extents are aligned to MIG_SIM_RAM_ALIGN.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIG_LOG_MODULE "sim-ram"
#include "sim.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct ext {
    uint64_t off, len;
};

struct mig__sim_ram {
    int fd;
    bool huge; /* the file lives on a tmpfs of 2 MiB pages */
    uint8_t *map; /* the whole memfd: populated at start, cleared by the scrubber */
    uint64_t bytes;
    pthread_mutex_t lock;
    pthread_cond_t cond;   /* scrubbed extents returned, or stop */
    struct ext *free_ext;  /* sorted by off, never adjacent (merged); owned */
    unsigned nfree;
    struct ext *dirty_ext; /* given back, waiting for the scrubber; owned */
    unsigned ndirty;
    unsigned cap; /* of both arrays: bytes / ALIGN + 1 extents at most */
    uint64_t dirty_bytes;
    uint64_t scrub_bytes; /* the extent the scrubber holds outside both lists; 0: none */
    bool stop;
    bool thread_started;
    pthread_t thread;
};

static uint64_t align_up(uint64_t v)
{
    return (v + MIG_SIM_RAM_ALIGN - 1) / MIG_SIM_RAM_ALIGN * MIG_SIM_RAM_ALIGN;
}

/* Insert [off, off+len) into the free list, merging with its neighbours. */
static void free_insert(struct mig__sim_ram *r, uint64_t off, uint64_t len)
{
    unsigned i = 0;
    while (i < r->nfree && r->free_ext[i].off < off)
        i++;
    bool left = i > 0 && r->free_ext[i - 1].off + r->free_ext[i - 1].len == off;
    bool right = i < r->nfree && off + len == r->free_ext[i].off;
    if (left && right) {
        r->free_ext[i - 1].len += len + r->free_ext[i].len;
        memmove(&r->free_ext[i], &r->free_ext[i + 1], (r->nfree - i - 1) * sizeof(struct ext));
        r->nfree--;
    } else if (left) {
        r->free_ext[i - 1].len += len;
    } else if (right) {
        r->free_ext[i].off = off;
        r->free_ext[i].len += len;
    } else {
        memmove(&r->free_ext[i + 1], &r->free_ext[i], (r->nfree - i) * sizeof(struct ext));
        r->free_ext[i] = (struct ext){off, len};
        r->nfree++;
    }
}

static void *scrubber(void *arg)
{
    struct mig__sim_ram *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->stop && !r->ndirty)
            pthread_cond_wait(&r->cond, &r->lock);
        if (r->stop)
            break;
        struct ext e = r->dirty_ext[--r->ndirty];
        r->dirty_bytes -= e.len;
        r->scrub_bytes = e.len;
        pthread_mutex_unlock(&r->lock);
        memset(r->map + e.off, 0, e.len);
        pthread_mutex_lock(&r->lock);
        r->scrub_bytes = 0;
        free_insert(r, e.off, e.len);
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* A file of 'bytes' on a tmpfs of its own with transparent huge pages
 * (huge=always), mounted only while the file is created: the open file
 * keeps the detached mount alive and nothing stays visible. Guests still
 * map it with small pages (their dirty tracking is per 4 KiB page); what
 * huge pages save is the backends' side: a copy into this memory through
 * write(2) or a fresh mapping costs a page-cache lookup per 2 MiB instead of
 * per 4 KiB (20 GB/s against 6 GB/s here). Needs CAP_SYS_ADMIN: -1 without. */
static int huge_file(uint64_t bytes)
{
    char dir[] = "/tmp/mig-sim-ram-XXXXXX", path[64], opts[64];
    int fd = -1;
    if (!mkdtemp(dir))
        return -1;
    snprintf(opts, sizeof(opts), "huge=always,size=%" PRIu64 ",mode=0700", bytes);
    if (mount("mig-sim-ram", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0) {
        snprintf(path, sizeof(path), "%s/memory", dir);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        unlink(path);
        umount2(dir, MNT_DETACH);
    }
    rmdir(dir);
    return fd;
}

int mig__sim_ram_new(uint64_t bytes, struct mig__sim_ram **r_out)
{
    struct mig__sim_ram *r = calloc(1, sizeof(*r));
    int rc = 0;
    *r_out = NULL;
    if (!r)
        return -MIG_ENOMEM;
    r->fd = -1;
    r->map = MAP_FAILED;
    r->bytes = bytes / MIG_SIM_RAM_ALIGN * MIG_SIM_RAM_ALIGN;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (!r->bytes) {
        rc = -MIG_EINVAL;
        goto out;
    }
    r->cap = (unsigned)(r->bytes / MIG_SIM_RAM_ALIGN) + 1;
    r->free_ext = calloc(r->cap, sizeof(struct ext));
    r->dirty_ext = calloc(r->cap, sizeof(struct ext));
    if (!r->free_ext || !r->dirty_ext) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    r->fd = huge_file(r->bytes);
    r->huge = r->fd >= 0;
    if (r->fd < 0)
        r->fd = memfd_create("simhost-memory", MFD_CLOEXEC);
    if (r->fd < 0 || ftruncate(r->fd, (off_t)r->bytes) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    r->map = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->map == MAP_FAILED) {
        rc = mig__from_errno(errno);
        goto out;
    }
    /* Every page now, once: guests then never pay a first touch. A kernel
     * without MADV_POPULATE_WRITE (before 5.14) gets the same by stores. */
    if (madvise(r->map, r->bytes, MADV_POPULATE_WRITE) < 0) {
        if (errno != EINVAL) {
            rc = mig__from_errno(errno); /* ENOMEM: the machine has less than SIZE */
            goto out;
        }
        for (uint64_t o = 0; o < r->bytes; o += MIG_SIM_PAGE)
            r->map[o] = 0;
    }
    r->free_ext[0] = (struct ext){0, r->bytes};
    r->nfree = 1;
    if (pthread_create(&r->thread, NULL, scrubber, r) != 0) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    r->thread_started = true;
    *r_out = r;
    r = NULL;
out:
    mig__sim_ram_free(r);
    return rc;
}

void mig__sim_ram_free(struct mig__sim_ram *r)
{
    if (!r)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    if (r->map != MAP_FAILED)
        munmap(r->map, r->bytes);
    if (r->fd >= 0)
        close(r->fd);
    free(r->free_ext);
    free(r->dirty_ext);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int mig__sim_ram_fd(const struct mig__sim_ram *r)
{
    return r->fd;
}

uint64_t mig__sim_ram_size(const struct mig__sim_ram *r)
{
    return r->bytes;
}

bool mig__sim_ram_huge(const struct mig__sim_ram *r)
{
    return r->huge;
}

/* Free bytes, counting those still being scrubbed (they will be free). */
static uint64_t free_bytes_locked(const struct mig__sim_ram *r)
{
    uint64_t sum = r->dirty_bytes + r->scrub_bytes;
    for (unsigned i = 0; i < r->nfree; i++)
        sum += r->free_ext[i].len;
    return sum;
}

uint64_t mig__sim_ram_free_bytes(struct mig__sim_ram *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t v = free_bytes_locked(r);
    pthread_mutex_unlock(&r->lock);
    return v;
}

uint64_t mig__sim_ram_largest(struct mig__sim_ram *r)
{
    uint64_t v = 0;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->nfree; i++)
        if (r->free_ext[i].len > v)
            v = r->free_ext[i].len;
    pthread_mutex_unlock(&r->lock);
    return v;
}

int mig__sim_ram_alloc(struct mig__sim_ram *r, uint64_t bytes, uint64_t *off_out)
{
    uint64_t len = align_up(bytes);
    int rc = -MIG_ENOSPC;
    if (!bytes || len < bytes)
        return -MIG_EINVAL;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        unsigned best = r->nfree;
        /* best fit: the smallest extent that holds it keeps large ones whole */
        for (unsigned i = 0; i < r->nfree; i++)
            if (r->free_ext[i].len >= len &&
                (best == r->nfree || r->free_ext[i].len < r->free_ext[best].len))
                best = i;
        if (best < r->nfree) {
            struct ext *e = &r->free_ext[best];
            *off_out = e->off;
            e->off += len;
            e->len -= len;
            if (!e->len) {
                memmove(e, e + 1, (r->nfree - best - 1) * sizeof(struct ext));
                r->nfree--;
            }
            rc = 0;
            break;
        }
        /* what is being scrubbed may make room: wait for it, not longer */
        if (!r->ndirty && !r->scrub_bytes)
            break;
        pthread_cond_wait(&r->cond, &r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void mig__sim_ram_release(struct mig__sim_ram *r, uint64_t off, uint64_t bytes)
{
    uint64_t len = align_up(bytes);
    if (!bytes || off % MIG_SIM_RAM_ALIGN || off > r->bytes || len > r->bytes - off)
        return;
    pthread_mutex_lock(&r->lock);
    if (r->ndirty < r->cap) { /* always, unless an extent is given back twice */
        r->dirty_ext[r->ndirty++] = (struct ext){off, len};
        r->dirty_bytes += len;
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}
