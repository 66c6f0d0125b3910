import COpus

/// Errors from the Opus encoder and the Ogg/Opus muxer.
public enum OggOpusError: Error, Equatable, Sendable {
    /// A libopus call failed; `code` is the negative `OPUS_*` error code, `message` its text.
    case opus(code: Int32, message: String)
    /// `encode(pcm:)` got a buffer that is not exactly one frame of interleaved samples.
    case wrongFrameLength(expected: Int, got: Int)
    /// The muxer was handed something that is not a well-formed Opus packet.
    case invalidPacket(String)
    /// A packet was added after `finish()` wrote the end-of-stream page.
    case streamFinished
    /// libogg reported an internal error (allocation failure or corrupted stream state).
    case ogg(String)

    static func opus(_ code: Int32) -> OggOpusError {
        .opus(code: code, message: String(cString: opus_strerror(code)))
    }
}
