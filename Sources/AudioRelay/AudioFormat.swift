import OggOpus

/// The one audio format of the relay, end to end: QEMU's HDA output into a 48 kHz stereo null
/// sink, captured as s16le and encoded by Opus at its native rate, so nothing resamples.
public enum AudioFormat {
    public static let sampleRate = OpusEncoder.sampleRate
    public static let channels = OpusEncoder.channels
    /// Bytes of one interleaved s16le frame (one sample per channel).
    public static let bytesPerFrame = 2 * channels
}
