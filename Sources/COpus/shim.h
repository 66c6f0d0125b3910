#include <opus/opus.h>

/*
 * opus_encoder_ctl() is a C variadic function driven by macros (OPUS_SET_BITRATE(x) expands
 * to a request number plus a type-checked argument). Swift cannot call C variadic functions,
 * so each control the Swift wrapper needs gets a fixed-signature inline helper here.
 * Each returns OPUS_OK or a negative OPUS_* error code.
 */

static inline int vmcloud_opus_set_bitrate(OpusEncoder *enc, opus_int32 bitsPerSecond) {
    return opus_encoder_ctl(enc, OPUS_SET_BITRATE(bitsPerSecond));
}

static inline int vmcloud_opus_set_complexity(OpusEncoder *enc, opus_int32 complexity) {
    return opus_encoder_ctl(enc, OPUS_SET_COMPLEXITY(complexity));
}

static inline int vmcloud_opus_set_signal(OpusEncoder *enc, opus_int32 signal) {
    return opus_encoder_ctl(enc, OPUS_SET_SIGNAL(signal));
}

static inline int vmcloud_opus_get_lookahead(OpusEncoder *enc, opus_int32 *samples) {
    return opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(samples));
}

static inline int vmcloud_opus_get_bitrate(OpusEncoder *enc, opus_int32 *bitsPerSecond) {
    return opus_encoder_ctl(enc, OPUS_GET_BITRATE(bitsPerSecond));
}
