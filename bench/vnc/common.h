/* Shared by the fake VNC server and the load client: the fixed pixel pattern and small I/O
 * helpers. The pattern depends only on the byte's offset inside a rectangle's pixel data, so
 * the client can check every byte it receives without any state from the server. */
#ifndef VNC_BENCH_COMMON_H
#define VNC_BENCH_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FB_WIDTH 1024
#define FB_HEIGHT 768
#define PATTERN_BYTES (FB_WIDTH * FB_HEIGHT * 4) /* largest raw rectangle the client accepts */

/* Not constant, not periodic on small strides: a relay that drops, duplicates or reorders a
 * chunk shows up as a mismatch. */
static inline uint8_t pattern_byte(uint32_t k) {
    uint32_t x = k * 2654435761u;
    return (uint8_t)((x >> 24) ^ (k >> 12));
}

static inline uint8_t *pattern_make(size_t n) {
    uint8_t *p = malloc(n);
    if (!p) { perror("malloc"); exit(1); }
    for (size_t k = 0; k < n; k++) p[k] = pattern_byte((uint32_t)k);
    return p;
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v; }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* 0 on success, -1 on error or EOF. */
static inline int send_all(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w; n -= (size_t)w;
    }
    return 0;
}

static inline int recv_all(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r; n -= (size_t)r;
    }
    return 0;
}

#endif
