/*
 * uffd-compat.h: the few userfaultfd and PAGEMAP_SCAN UAPI definitions the
 * sim backend needs and Debian 12's 6.1 headers lack. Values are fixed UAPI,
 * checked against torvalds/linux include/uapi/linux/userfaultfd.h and
 * include/uapi/linux/fs.h (PAGEMAP_SCAN landed in 6.7). Whether the running
 * kernel supports them is decided at run time (UFFDIO_API features).
 */
#ifndef MIG_UFFD_COMPAT_H
#define MIG_UFFD_COMPAT_H

#include <stdint.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

#ifndef PAGEMAP_SCAN
/* Categories reported in page_region.categories and used in the masks. */
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN   (1 << 1)
#define PAGE_IS_FILE      (1 << 2)
#define PAGE_IS_PRESENT   (1 << 3)
#define PAGE_IS_SWAPPED   (1 << 4)
#define PAGE_IS_PFNZERO   (1 << 5)

/* [start, end) with the categories of every page in it. */
struct page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};

#define PM_SCAN_WP_MATCHING   (1 << 0) /* write-protect the pages reported */
#define PM_SCAN_CHECK_WPASYNC (1 << 1) /* fail on a range without async uffd-wp */

struct pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#endif
