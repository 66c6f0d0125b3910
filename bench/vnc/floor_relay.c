/* Reference relay for the benchmark, not a product: the least work any WebSocket -> unix socket
 * proxy must do (read from the VNC socket, writev a frame header plus the bytes to TCP; unmask
 * the client's frames and write them out). No RFB parsing, no HTTP parsing beyond the blank
 * line: it answers every upgrade with the accept key of the fixed key vnc_load_client sends.
 * Its numbers are the floor the kernel sets on this machine (loopback TCP plus two copies), so
 * that "bridge vs direct" can be split into what any proxy pays and what the bridge adds.
 *
 *   floor_relay PORT UNIX_SOCKET_PATH      (two threads per connection, blocking I/O)
 * Build with -DCHUNK=65536 etc. to see how the read size changes the kernel's cost.
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>
#include <sys/un.h>

#ifndef CHUNK
#define CHUNK (256 * 1024) /* same read size as the bridge's VNCSocket.maxReadBytes */
#endif

static const char *target;

typedef struct { int ws, vnc; } pair;

/* VNC -> browser: one binary frame per read. */
static void *down(void *arg) {
    pair *p = arg;
    uint8_t *buf = malloc(CHUNK), hdr[10];
    for (;;) {
        ssize_t n = read(p->vnc, buf, CHUNK);
        if (n <= 0) break;
        size_t hl;
        hdr[0] = 0x82;
        if (n < 126) { hdr[1] = (uint8_t)n; hl = 2; }
        else if (n < 65536) { hdr[1] = 126; put16(hdr + 2, (uint16_t)n); hl = 4; }
        else { hdr[1] = 127; put32(hdr + 2, 0); put32(hdr + 6, (uint32_t)n); hl = 10; }
        struct iovec iov[2] = {{hdr, hl}, {buf, (size_t)n}};
        size_t left = hl + (size_t)n;
        while (left > 0) { /* finish a partial writev */
            ssize_t w = writev(p->ws, iov, 2);
            if (w <= 0) goto out;
            left -= (size_t)w;
            for (int i = 0; i < 2; i++) {
                size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
                iov[i].iov_base = (uint8_t *)iov[i].iov_base + k; iov[i].iov_len -= k; w -= (ssize_t)k;
            }
        }
    }
out:
    shutdown(p->ws, SHUT_RDWR);
    shutdown(p->vnc, SHUT_RDWR);
    free(buf);
    return NULL;
}

/* Browser -> VNC: unmask every data frame's payload (control frames are dropped). */
static void *conn_main(void *arg) {
    pair *p = arg;
    char req[4096];
    size_t len = 0;
    while (!memmem(req, len, "\r\n\r\n", 4)) { /* the client sends nothing more before 101 */
        ssize_t n = recv(p->ws, req + len, sizeof req - len, 0);
        if (n <= 0 || (len += (size_t)n) == sizeof req) goto done;
    }
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", target);
    p->vnc = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(p->vnc, (struct sockaddr *)&sa, sizeof sa) || send_all(p->ws, ok, sizeof ok - 1)) goto done;
    pthread_t t;
    if (pthread_create(&t, NULL, down, p)) goto done;
    uint8_t h[14], buf[4096];
    for (;;) {
        if (recv_all(p->ws, h, 2)) break;
        int len7 = h[1] & 127, op = h[0] & 15;
        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        if (recv_all(p->ws, h + 2, ext + 4)) break; /* client frames are always masked */
        uint64_t n = len7 == 126 ? get16(h + 2) : len7 == 127 ? ((uint64_t)get32(h + 2) << 32 | get32(h + 6)) : (uint64_t)len7;
        const uint8_t *mask = h + 2 + ext;
        for (uint64_t off = 0; off < n;) {
            size_t k = n - off < sizeof buf ? (size_t)(n - off) : sizeof buf;
            if (recv_all(p->ws, buf, k)) goto stop;
            for (size_t i = 0; i < k; i++) buf[i] ^= mask[(off + i) & 3];
            if ((op == 0 || op == 2) && send_all(p->vnc, buf, k)) goto stop;
            off += k;
        }
        if (op == 8) break;
    }
stop:
    shutdown(p->ws, SHUT_RDWR);
    shutdown(p->vnc, SHUT_RDWR);
    pthread_join(t, NULL);
done:
    close(p->ws);
    if (p->vnc >= 0) close(p->vnc);
    free(p);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s PORT UNIX_SOCKET_PATH\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    target = argv[2];
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 512)) { perror("bind/listen"); return 1; }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) { /* runs until the driver kills it */
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; perror("accept"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pair *p = malloc(sizeof *p);
        p->ws = fd; p->vnc = -1;
        pthread_t t;
        if (pthread_create(&t, &attr, conn_main, p)) { close(fd); free(p); }
    }
}
