/* Load client for the VNC bridge benchmark: an RFB 3.8 viewer, either straight on the VNC unix
 * socket or through a WebSocket proxy (minimal RFC 6455 client: masked frames out, unmasked
 * frames in, 7/16/64-bit lengths, ping answered, close ends the session).
 *
 *   vnc_load_client --unix PATH | --ws HOST:PORT  stream [--conns N] [--seconds S] [--warmup W] [--gate]
 *   vnc_load_client --unix PATH | --ws HOST:PORT  echo [--count N] [--warmup M]
 *
 * stream: N connections (one thread each) read the server's FramebufferUpdates; every message is
 *   framed and every pixel byte compared with the pattern (common.h). Once every handshake is
 *   done it prints "READY n"; then all streams start together, and after W warm-up seconds it
 *   prints "START", measures S seconds, prints "END" (the driver samples /proc between the two
 *   lines), then one "RESULT {json}" line. With --gate it waits for a line on stdin after READY
 *   (before streaming) and after END (before disconnecting).
 * echo: one connection; M warm-up then N timed round trips of FramebufferUpdateRequest -> the
 *   1x1 update; prints "RESULT {json}" with p50/p99 in microseconds.
 * RFB bytes counted are the server's messages after ServerInit (WebSocket framing excluded).
 * MB = 10^6 bytes. Exit status 1 if any connection failed or any byte mismatched. */
#define _GNU_SOURCE /* memmem */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/un.h>

#define RBUF_CAP (512 * 1024)

static const char *opt_unix, *opt_ws_host;
static int opt_ws_port;
static const uint8_t *pattern;
static atomic_int stop_flag, go_flag, ready_count;
static int opt_gate;

typedef struct {
    int fd, ws;
    uint8_t *rbuf;
    size_t rpos, rlen;
    /* WebSocket frame being read */
    uint64_t ws_left;
    int ws_opcode;
    uint8_t ctrl[125];
    size_t ctrl_len;
    /* RFB server-message parser */
    int st; /* 0 message header, 1 rectangle header, 2 pixels */
    uint8_t hdr[12];
    size_t hdr_len, hdr_need;
    unsigned rects_left;
    size_t pix_left, pix_off;
    _Atomic uint64_t bytes, messages;
    char err[160];
    int failed;
    pthread_t thread;
    char pad[64];
} conn;

static int fail(conn *c, const char *what) {
    if (!c->failed) snprintf(c->err, sizeof c->err, "%s%s%s", what, errno ? ": " : "", errno ? strerror(errno) : "");
    c->failed = 1;
    return -1;
}

/* Reads more bytes into rbuf, keeping the unread tail. */
static int fill(conn *c) {
    if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
    else if (c->rlen == RBUF_CAP) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos; c->rpos = 0;
    }
    for (;;) {
        errno = 0;
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return fail(c, "connection closed by peer");
        if (r < 0) return fail(c, "recv");
        c->rlen += (size_t)r;
        return 0;
    }
}

static int ws_send(conn *c, int opcode, const uint8_t *data, size_t n) {
    uint8_t f[14 + 256];
    if (n > 256) return fail(c, "ws_send: message too long");
    size_t h = 0;
    f[h++] = 0x80 | opcode; /* FIN */
    if (n < 126) f[h++] = 0x80 | (uint8_t)n;
    else { f[h++] = 0x80 | 126; put16(f + h, (uint16_t)n); h += 2; }
    uint32_t key = (uint32_t)rand();
    uint8_t *mask = f + h;
    memcpy(mask, &key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) f[h + i] = data[i] ^ mask[i & 3];
    return send_all(c->fd, f, h + n) ? fail(c, "send") : 0;
}

static int rfb_send(conn *c, const uint8_t *data, size_t n) {
    if (c->ws) return ws_send(c, 2, data, n);
    return send_all(c->fd, data, n) ? fail(c, "send") : 0;
}

/* Next run of RFB bytes (at most max), pointing into rbuf; consumes it. -1 on error/EOF. */
static ssize_t get_payload(conn *c, size_t max, const uint8_t **out) {
    for (;;) {
        if (!c->ws || c->ws_left > 0) {
            if (c->rpos == c->rlen && fill(c)) return -1;
            size_t n = c->rlen - c->rpos;
            if (n > max) n = max;
            if (c->ws && n > c->ws_left) n = (size_t)c->ws_left;
            const uint8_t *p = c->rbuf + c->rpos;
            c->rpos += n;
            if (!c->ws) { *out = p; return (ssize_t)n; }
            c->ws_left -= n;
            if (c->ws_opcode < 8) { *out = p; return (ssize_t)n; }
            memcpy(c->ctrl + c->ctrl_len, p, n); /* control frames are <= 125 bytes */
            c->ctrl_len += n;
            if (c->ws_left == 0 && c->ws_opcode == 9 && ws_send(c, 10, c->ctrl, c->ctrl_len)) return -1;
            if (c->ws_left == 0 && c->ws_opcode == 8) { errno = 0; return fail(c, "websocket closed by server"); }
            continue;
        }
        /* Frame header: 2 bytes, then 0/2/8 bytes of length; a server must not mask. */
        while (c->rlen - c->rpos < 2) if (fill(c)) return -1;
        const uint8_t *h = c->rbuf + c->rpos;
        int opcode = h[0] & 15, len7 = h[1] & 127;
        errno = 0;
        if (h[1] & 0x80) return fail(c, "masked frame from server");
        if (opcode == 1) return fail(c, "text frame from server");
        size_t hl = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        while (c->rlen - c->rpos < hl) if (fill(c)) return -1;
        h = c->rbuf + c->rpos;
        c->ws_left = len7 == 126 ? get16(h + 2) : len7 == 127 ? ((uint64_t)get32(h + 2) << 32 | get32(h + 6)) : (uint64_t)len7;
        if (opcode >= 8 && c->ws_left > 125) return fail(c, "oversized control frame");
        if (opcode >= 8) c->ctrl_len = 0;
        c->ws_opcode = opcode;
        c->rpos += hl;
    }
}

static int rfb_read(conn *c, uint8_t *dst, size_t n) {
    while (n > 0) {
        const uint8_t *p;
        ssize_t r = get_payload(c, n, &p);
        if (r < 0) return -1;
        memcpy(dst, p, (size_t)r);
        dst += r; n -= (size_t)r;
    }
    return 0;
}

/* Frames and checks server messages (only FramebufferUpdate with raw rectangles is expected). */
static int rfb_parse(conn *c, const uint8_t *p, size_t n) {
    atomic_store_explicit(&c->bytes, atomic_load_explicit(&c->bytes, memory_order_relaxed) + n, memory_order_relaxed);
    errno = 0;
    while (n > 0) {
        if (c->st < 2) { /* gather a header */
            size_t k = c->hdr_need - c->hdr_len;
            if (k > n) k = n;
            memcpy(c->hdr + c->hdr_len, p, k);
            c->hdr_len += k; p += k; n -= k;
            if (c->hdr_len < c->hdr_need) continue;
            c->hdr_len = 0;
            if (c->st == 0) {
                if (c->hdr[0] != 0) return fail(c, "unexpected server message type");
                c->rects_left = get16(c->hdr + 2);
                if (c->rects_left == 0) {
                    atomic_fetch_add_explicit(&c->messages, 1, memory_order_relaxed);
                    continue;
                }
                c->st = 1; c->hdr_need = 12;
            } else {
                if (get32(c->hdr + 8) != 0) return fail(c, "non-raw rectangle");
                c->pix_left = (size_t)get16(c->hdr + 4) * get16(c->hdr + 6) * 4;
                if (c->pix_left > PATTERN_BYTES) return fail(c, "rectangle too large");
                c->pix_off = 0;
                c->st = 2;
            }
        }
        if (c->st == 2) {
            size_t k = c->pix_left < n ? c->pix_left : n;
            if (memcmp(p, pattern + c->pix_off, k) != 0) return fail(c, "pixel bytes differ from the pattern");
            c->pix_off += k; c->pix_left -= k; p += k; n -= k;
            if (c->pix_left > 0) continue;
            if (--c->rects_left > 0) { c->st = 1; c->hdr_need = 12; continue; }
            c->st = 0; c->hdr_need = 4;
            atomic_fetch_add_explicit(&c->messages, 1, memory_order_relaxed);
        }
    }
    return 0;
}

static int connect_and_handshake(conn *c) {
    errno = 0;
    c->rbuf = malloc(RBUF_CAP);
    c->st = 0; c->hdr_need = 4;
    if (!c->rbuf) return fail(c, "malloc");
    if (opt_unix) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", opt_unix);
        c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) return fail(c, "connect unix");
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_ws_port)};
        inet_pton(AF_INET, opt_ws_host, &sa.sin_addr);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1; /* the echo round trips are tiny writes */
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) return fail(c, "connect tcp");
    }
    struct timeval tv = {10, 0}; /* no read ever waits forever */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!opt_unix) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET /websockify HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         opt_ws_host, opt_ws_port);
        /* Path: noVNC's default. (vnc-proxy's "**" route does not match "/" itself.) */
        if (send_all(c->fd, req, (size_t)n)) return fail(c, "send upgrade");
        /* Read the response; bytes after the blank line already belong to the WebSocket. */
        char *end = NULL;
        while (!end) {
            if (c->rlen > 8192) { errno = 0; return fail(c, "upgrade response too long"); }
            if (fill(c)) return -1;
            end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        }
        if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0) { errno = 0; return fail(c, "upgrade refused"); }
        c->rpos = (size_t)((uint8_t *)end + 4 - c->rbuf);
        c->ws = 1;
    }
    uint8_t b[64];
    errno = 0;
    if (rfb_read(c, b, 12)) return -1;
    if (memcmp(b, "RFB 003.008\n", 12)) return fail(c, "server version is not 3.8");
    if (rfb_send(c, (const uint8_t *)"RFB 003.008\n", 12) || rfb_read(c, b, 1) || b[0] == 0 || rfb_read(c, b + 1, b[0]))
        return fail(c, "security types");
    if (!memchr(b + 1, 1, b[0])) return fail(c, "server does not offer security None");
    if (rfb_send(c, (const uint8_t *)"\x01", 1) || rfb_read(c, b, 4)) return -1;
    if (get32(b) != 0) return fail(c, "security result not OK");
    if (rfb_send(c, (const uint8_t *)"\x01", 1) || rfb_read(c, b, 24)) return -1; /* shared ClientInit */
    uint32_t name_len = get32(b + 20);
    if (name_len > sizeof b || rfb_read(c, b, name_len)) return fail(c, "ServerInit name");
    static const uint8_t set_enc[8] = {2, 0, 0, 1, 0, 0, 0, 0}; /* SetEncodings [raw] */
    return rfb_send(c, set_enc, sizeof set_enc);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static void *stream_thread(void *arg) {
    conn *c = arg;
    uint8_t fbur[10] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0}; /* full, non-incremental request */
    put16(fbur + 6, FB_WIDTH); put16(fbur + 8, FB_HEIGHT);
    if (connect_and_handshake(c) == 0) atomic_fetch_add(&ready_count, 1);
    /* Streams start together, so that late handshakes do not compete with running streams
     * (and the driver can weigh the proxy with every viewer connected but idle). */
    while (!c->failed && !atomic_load(&go_flag) && !atomic_load(&stop_flag)) sleep_s(0.001);
    if (!c->failed && rfb_send(c, fbur, sizeof fbur) == 0) {
        while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
            const uint8_t *p;
            ssize_t n = get_payload(c, SIZE_MAX, &p);
            if (n < 0 || rfb_parse(c, p, (size_t)n)) break;
        }
    }
    return NULL;
}

/* --gate: wait for the driver to write a line (or close stdin) after READY and after END. */
static void gate(void) {
    char line[16];
    if (opt_gate && !fgets(line, sizeof line, stdin)) {}
}

static int run_stream(int nconns, double seconds, double warmup) {
    conn *cs = calloc((size_t)nconns, sizeof *cs);
    for (int i = 0; i < nconns; i++) {
        if (pthread_create(&cs[i].thread, NULL, stream_thread, &cs[i])) { fprintf(stderr, "pthread_create failed\n"); return 1; }
    }
    /* Wait (bounded) for every handshake; a failed connection counts as an error below. */
    double deadline = now_s() + 60;
    for (;;) {
        int failed = 0;
        for (int i = 0; i < nconns; i++) failed += cs[i].failed;
        if (atomic_load(&ready_count) + failed >= nconns || now_s() > deadline) break;
        sleep_s(0.01);
    }
    printf("READY %d\n", atomic_load(&ready_count));
    fflush(stdout);
    gate();
    atomic_store(&go_flag, 1);
    sleep_s(warmup);
    uint64_t *b0 = calloc((size_t)nconns, 8), m0 = 0, bsum = 0, msum = 0;
    for (int i = 0; i < nconns; i++) { b0[i] = atomic_load(&cs[i].bytes); m0 += atomic_load(&cs[i].messages); }
    double cpu0 = cpu_seconds(), t0 = now_s();
    printf("START\n");
    fflush(stdout);
    sleep_s(seconds);
    double t1 = now_s(), cpu1 = cpu_seconds(), dt = t1 - t0, lo = 1e30, hi = 0;
    for (int i = 0; i < nconns; i++) {
        uint64_t d = atomic_load(&cs[i].bytes) - b0[i];
        bsum += d;
        msum += atomic_load(&cs[i].messages);
        if (d / dt < lo) lo = d / dt;
        if (d / dt > hi) hi = d / dt;
    }
    msum -= m0;
    printf("END\n");
    fflush(stdout);
    gate(); /* keep streaming (and every proxy process alive) until the driver has sampled */
    atomic_store(&stop_flag, 1);
    int errors = 0;
    const char *first_err = "";
    for (int i = 0; i < nconns; i++) {
        pthread_join(cs[i].thread, NULL);
        if (cs[i].failed) { errors++; if (!*first_err) first_err = cs[i].err; }
        if (cs[i].fd > 0) close(cs[i].fd);
    }
    printf("RESULT {\"mode\":\"stream\",\"conns\":%d,\"ready\":%d,\"seconds\":%.4f,\"bytes\":%llu,\"messages\":%llu,"
           "\"mbps\":%.3f,\"conn_min_mbps\":%.3f,\"conn_max_mbps\":%.3f,\"client_cpu_s\":%.3f,\"errors\":%d,\"error\":\"%s\"}\n",
           nconns, atomic_load(&ready_count), dt, (unsigned long long)bsum, (unsigned long long)msum, bsum / dt / 1e6,
           lo / 1e6, hi / 1e6, cpu1 - cpu0, errors, first_err);
    return errors || bsum == 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run_echo(int count, int warmup) {
    conn c = {0};
    uint8_t fbur[10] = {3, 1, 0, 0, 0, 0, 0, 1, 0, 1}; /* incremental 1x1 */
    if (connect_and_handshake(&c)) { fprintf(stderr, "echo: %s\n", c.err); return 1; }
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    for (int i = 0; i < warmup + count; i++) {
        uint64_t want = atomic_load(&c.messages) + 1;
        double t0 = now_s();
        if (rfb_send(&c, fbur, sizeof fbur)) break;
        while (atomic_load(&c.messages) < want) {
            const uint8_t *p;
            ssize_t n = get_payload(&c, SIZE_MAX, &p);
            if (n < 0 || rfb_parse(&c, p, (size_t)n)) goto out;
        }
        if (i >= warmup) { lat[i - warmup] = (now_s() - t0) * 1e6; sum += lat[i - warmup]; }
    }
out:
    if (c.failed) { fprintf(stderr, "echo: %s\n", c.err); return 1; }
    qsort(lat, (size_t)count, sizeof *lat, cmp_double);
#define PCT(p) lat[(size_t)((p) / 100.0 * (count - 1) + 0.5)]
    printf("RESULT {\"mode\":\"echo\",\"count\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"min_us\":%.1f,"
           "\"max_us\":%.1f,\"mean_us\":%.1f,\"bytes\":%llu,\"client_cpu_s\":%.3f,\"errors\":0}\n",
           count, PCT(50), PCT(90), PCT(99), lat[0], lat[count - 1], sum / count,
           (unsigned long long)atomic_load(&c.bytes), cpu_seconds());
    return atomic_load(&c.bytes) != (uint64_t)(warmup + count) * 20; /* 20 bytes per 1x1 update */
}

static void usage(void) {
    fprintf(stderr, "usage: vnc_load_client (--unix PATH | --ws HOST:PORT) (stream [--conns N] [--seconds S] [--warmup W] [--gate] |"
                    " echo [--count N] [--warmup M])\n");
    exit(2);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const char *mode = NULL;
    int conns = 1, count = 5000;
    double seconds = 5, warmup = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--unix") && v) { opt_unix = v; i++; }
        else if (!strcmp(a, "--ws") && v) {
            static char host[64];
            const char *colon = strrchr(v, ':');
            if (!colon || colon - v >= (long)sizeof host) usage();
            memcpy(host, v, (size_t)(colon - v));
            opt_ws_host = host; opt_ws_port = atoi(colon + 1); i++;
        }
        else if (!strcmp(a, "--gate")) opt_gate = 1;
        else if (!strcmp(a, "--conns") && v) { conns = atoi(v); i++; }
        else if (!strcmp(a, "--seconds") && v) { seconds = atof(v); i++; }
        else if (!strcmp(a, "--count") && v) { count = atoi(v); i++; }
        else if (!strcmp(a, "--warmup") && v) { warmup = atof(v); i++; }
        else if (!strcmp(a, "stream") || !strcmp(a, "echo")) mode = a;
        else usage();
    }
    if (!mode || !!opt_unix == !!opt_ws_host || conns < 1 || conns > 1000 || count < 1 || seconds <= 0 || seconds > 600)
        usage();
    pattern = pattern_make(PATTERN_BYTES);
    if (!strcmp(mode, "stream")) return run_stream(conns, seconds, warmup < 0 ? 1 : warmup);
    return run_echo(count, warmup < 0 ? 500 : (int)warmup);
}
