/*
 * fuzz-xen-stream.c: libFuzzer target for the Xen stream parser
 * (libmig/src/hv/xen-stream.c): whole streams as libxl would read them and
 * state blobs as the destination receives them from the network. The first
 * byte picks the mode (even: stream through a memfd, odd: blob records with
 * every type allowed). Build: make fuzz-xen-stream; run:
 * tests/fuzz/run-fuzz-xen-stream.sh BUILDDIR [SECONDS].
 */
#include <config.h>

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../libmig/src/hv/xen-stream.h"

static int visit(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                 uint32_t len)
{
    /* touch every byte the parser hands out */
    volatile uint8_t x = 0;
    for (uint32_t i = 0; i < len; i++)
        x ^= body[i];
    (void)x;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t all[] = {
        MIG_XS_PRIV_CONFIG,  MIG_XS_PRIV_HOLES,  MIG_XS_X86_CPUID_POLICY, MIG_XS_X86_MSR_POLICY,
        MIG_XS_X86_TSC_INFO, MIG_XS_HVM_CONTEXT, MIG_XS_HVM_PARAMS,       MIG_XS_PAGE_DATA,
    };
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        mig__xs_parse_records(NULL, data + 1, size - 1, all, sizeof(all) / sizeof(all[0]), visit,
                              NULL);
        return 0;
    }
    int fd = memfd_create("fuzz-xs", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data + 1, size - 1) == (ssize_t)(size - 1) && lseek(fd, 0, SEEK_SET) == 0) {
        struct mig__xs_parse_info info;
        mig__xs_parse_stream(NULL, fd, visit, NULL, &info);
    }
    close(fd);
    return 0;
}
