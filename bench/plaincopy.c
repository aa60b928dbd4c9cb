/*
 * plaincopy.c: the references for bench/precopy, done the plain way. The
 * sender sends BYTES of random data from a memory region, in 1 MiB send()
 * calls, over a loopback TCP socket. The receiver either recv()s into one
 * reused 1 MiB buffer ("sink": what the link can carry) or straight into a
 * fresh memfd-backed region of the same size ("fresh": first-touch faults
 * included, as a destination guest's memory has them). Prints GB/s.
 *
 * Usage: plaincopy sink|fresh BYTES
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct recv_arg {
    int fd;
    uint8_t *dst;
    bool sink;
    uint64_t bytes;
    uint64_t got;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *receiver(void *p)
{
    struct recv_arg *a = p;
    while (a->got < a->bytes) {
        uint64_t left = a->bytes - a->got;
        ssize_t r = recv(a->fd, a->sink ? a->dst : a->dst + a->got,
                         left < CHUNK ? (size_t)left : CHUNK, 0);
        if (r <= 0)
            break;
        a->got += (uint64_t)r;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    bool sink = strcmp(argv[1], "sink") == 0;
    uint64_t bytes = strtoull(argv[2], NULL, 10);
    uint8_t *src = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int mfd = memfd_create("plaincopy-dst", MFD_CLOEXEC);
    if (src == MAP_FAILED || mfd < 0 || ftruncate(mfd, (off_t)bytes) < 0)
        return 1;
    uint8_t *dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (dst == MAP_FAILED)
        return 1;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < bytes / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((uint64_t *)src)[i] = x;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&a, &l))
        return 1;
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cfd, (struct sockaddr *)&a, sizeof(a)))
        return 1;
    struct recv_arg ra = {.fd = accept(lfd, NULL, NULL), .dst = dst, .bytes = bytes, .sink = sink};
    pthread_t t;
    double t0 = now_s();
    pthread_create(&t, NULL, receiver, &ra);
    uint64_t sent = 0;
    while (sent < bytes) {
        uint64_t left = bytes - sent;
        ssize_t w = send(cfd, src + sent, left < CHUNK ? (size_t)left : CHUNK, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (uint64_t)w;
    }
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    if (ra.got != bytes || (!sink && memcmp(src, dst, 4096) != 0))
        return 1;
    printf("%.3f\n", (double)bytes / dt / 1e9);
    return 0;
}
