/*
 * filecopy.c: the reference for bench/blockmirror, done the plain way: a
 * disk image moved file to file through a loopback TCP socket. The sender
 * thread read()s SRC in 1 MiB pieces and send()s them; the receiver recv()s
 * into a 1 MiB buffer, write()s at the same offset into DST (created sparse
 * of SRC's size), and fdatasync()s DST at the end. Prints the seconds it
 * took and GB/s.
 *
 * Usage: filecopy SRC DST
 */
#include <config.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct send_arg {
    int sock;
    int fd;
    uint64_t size;
    int rc;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sender(void *p)
{
    struct send_arg *a = p;
    char *buf = malloc(CHUNK);
    a->rc = buf ? 0 : 1;
    for (uint64_t off = 0; off < a->size && !a->rc;) {
        ssize_t n = read(a->fd, buf, CHUNK);
        if (n <= 0) {
            a->rc = 1;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = send(a->sock, buf + done, (size_t)(n - done), 0);
            if (w <= 0) {
                a->rc = 1;
                break;
            }
            done += w;
        }
        off += (uint64_t)n;
    }
    free(buf);
    close(a->sock);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    struct stat sb;
    if (argc != 3) {
        fprintf(stderr, "usage: filecopy SRC DST\n");
        return 2;
    }
    int in = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || fstat(in, &sb) < 0 || ftruncate(out, sb.st_size) < 0) {
        perror("filecopy");
        return 1;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) < 0) {
        perror("filecopy: listen");
        return 1;
    }
    double t0 = now_s();
    struct send_arg a = {.fd = in, .size = (uint64_t)sb.st_size};
    a.sock = socket(AF_INET, SOCK_STREAM, 0);
    if (a.sock < 0 || connect(a.sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("filecopy: connect");
        return 1;
    }
    int c = accept(l, NULL, NULL);
    pthread_t th;
    if (c < 0 || pthread_create(&th, NULL, sender, &a) != 0)
        return 1;
    char *buf = malloc(CHUNK);
    uint64_t off = 0;
    size_t fill = 0;
    int rc = buf ? 0 : 1;
    while (!rc) {
        ssize_t n = recv(c, buf + fill, CHUNK - fill, 0);
        if (n < 0) {
            rc = 1;
            break;
        }
        fill += (size_t)n;
        if (fill == CHUNK || (n == 0 && fill)) {
            if (pwrite(out, buf, fill, (off_t)off) != (ssize_t)fill)
                rc = 1;
            off += fill;
            fill = 0;
        }
        if (n == 0)
            break;
    }
    pthread_join(th, NULL);
    if (!rc && fdatasync(out) < 0)
        rc = 1;
    double dt = now_s() - t0;
    if (rc || a.rc || off != (uint64_t)sb.st_size) {
        fprintf(stderr, "filecopy: copy failed\n");
        return 1;
    }
    printf("%.6f %.3f\n", dt, (double)off / dt / 1e9);
    free(buf);
    close(c);
    close(l);
    close(in);
    close(out);
    return 0;
}
