/* Fake VNC server on a unix socket for the bridge benchmark. One thread per client.
 *
 *   fake_vnc_server stream|echo SOCKET_PATH
 *
 * Both modes do the RFB 3.8 server handshake (version, security types [None], SecurityResult
 * OK, ServerInit 1024x768 32bpp "vmcloud-bench") and then parse the client's messages.
 *   stream: after the first FramebufferUpdateRequest, sends FramebufferUpdates of one raw
 *           1024x64 rectangle (256 KiB of pattern, see common.h) back to back, as fast as the
 *           socket takes them, until the client goes away. Client input is no longer read
 *           (the benchmark client sends none after that request).
 *   echo:   answers every FramebufferUpdateRequest at once with a 1x1 raw update (20 bytes).
 */
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <sys/un.h>

#define STREAM_W 1024
#define STREAM_H 64

static int stream_mode;
static uint8_t *stream_msg; /* one complete FramebufferUpdate, built once */
static size_t stream_msg_len;
static uint8_t echo_msg[4 + 12 + 4];

static void build_update(uint8_t *m, uint16_t w, uint16_t h) {
    m[0] = 0; m[1] = 0; put16(m + 2, 1);            /* FramebufferUpdate, 1 rectangle */
    put16(m + 4, 0); put16(m + 6, 0);               /* x, y */
    put16(m + 8, w); put16(m + 10, h);
    put32(m + 12, 0);                               /* raw encoding */
    for (uint32_t k = 0; k < (uint32_t)w * h * 4; k++) m[16 + k] = pattern_byte(k);
}

static int handshake(int fd) {
    uint8_t buf[64];
    if (send_all(fd, "RFB 003.008\n", 12) || recv_all(fd, buf, 12)) return -1;
    if (memcmp(buf, "RFB 003.008\n", 12) != 0) return -1;
    if (send_all(fd, "\x01\x01", 2) || recv_all(fd, buf, 1) || buf[0] != 1) return -1;
    if (send_all(fd, "\0\0\0\0", 4) || recv_all(fd, buf, 1)) return -1; /* ClientInit */
    static const char name[] = "vmcloud-bench";
    uint8_t init[24 + sizeof name - 1] = {0};
    put16(init, FB_WIDTH); put16(init + 2, FB_HEIGHT);
    /* PIXEL_FORMAT: bpp 32, depth 24, little endian, true colour, max 255/255/255, shifts 16/8/0 */
    uint8_t pf[16] = {32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0};
    memcpy(init + 4, pf, 16);
    put32(init + 20, sizeof name - 1);
    memcpy(init + 24, name, sizeof name - 1);
    return send_all(fd, init, sizeof init);
}

/* Reads one client message; returns its type, or -1 on EOF/garbage. */
static int read_client_message(int fd) {
    uint8_t h[20], skip[4096];
    if (recv_all(fd, h, 1)) return -1;
    size_t rest, payload = 0;
    switch (h[0]) {
    case 0: rest = 19; break;                      /* SetPixelFormat */
    case 2: rest = 3; break;                       /* SetEncodings, payload below */
    case 3: rest = 9; break;                       /* FramebufferUpdateRequest */
    case 4: rest = 7; break;                       /* KeyEvent */
    case 5: rest = 5; break;                       /* PointerEvent */
    case 6: rest = 7; break;                       /* ClientCutText, payload below */
    default: fprintf(stderr, "fake_vnc_server: unknown client message %d\n", h[0]); return -1;
    }
    if (recv_all(fd, h + 1, rest)) return -1;
    if (h[0] == 2) payload = 4u * get16(h + 2);
    if (h[0] == 6) payload = get32(h + 4) & 0x7fffffff;
    while (payload > 0) {
        size_t n = payload < sizeof skip ? payload : sizeof skip;
        if (recv_all(fd, skip, n)) return -1;
        payload -= n;
    }
    return h[0];
}

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    /* Bounded waits for a client that stalls in the handshake; streaming sends block instead
     * (that is the backpressure being measured) but end when the client closes. */
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (handshake(fd) == 0) {
        if (stream_mode) {
            int t;
            while ((t = read_client_message(fd)) >= 0 && t != 3) {}
            if (t == 3)
                while (send_all(fd, stream_msg, stream_msg_len) == 0) {}
        } else {
            int t;
            tv.tv_sec = 60; /* idle between requests is allowed, just not forever */
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            while ((t = read_client_message(fd)) >= 0)
                if (t == 3 && send_all(fd, echo_msg, sizeof echo_msg)) break;
        }
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "stream") && strcmp(argv[1], "echo"))) {
        fprintf(stderr, "usage: %s stream|echo SOCKET_PATH\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    stream_mode = strcmp(argv[1], "stream") == 0;
    stream_msg_len = 16 + STREAM_W * STREAM_H * 4;
    stream_msg = malloc(stream_msg_len);
    if (!stream_msg) return 1;
    build_update(stream_msg, STREAM_W, STREAM_H);
    build_update(echo_msg, 1, 1);

    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[2]) >= sizeof sa.sun_path) { fprintf(stderr, "socket path too long\n"); return 2; }
    strcpy(sa.sun_path, argv[2]);
    unlink(argv[2]);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 512)) { perror("bind/listen"); return 1; }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) { /* runs until the driver kills it */
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; perror("accept"); return 1; }
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd)) close(fd);
    }
}
