import COpus

/// An Opus encoder for the relay's fixed input format: 48 kHz, 2 channels, signed 16-bit
/// interleaved PCM. One encoder per VM; its packets are muxed for any number of listeners.
///
/// The class owns the C `OpusEncoder` state and destroys it in `deinit`. It is deliberately
/// **not** `Sendable`: libopus encoder state is mutable and unsynchronised, so an instance must
/// be used from one isolation domain at a time (e.g. owned by the VM's capture task or actor).
public final class OpusEncoder {
    /// The only input rate and channel count the relay captures (PulseAudio record stream).
    public static let sampleRate = 48_000
    public static let channels = 2
    /// Upper bound for one encoded packet, as recommended by the libopus documentation.
    public static let maxPacketBytes = 4_000

    /// libopus' "application" mode; it fixes which codec layers and delays are used.
    public enum Application: Sendable {
        /// CELT only, lowest algorithmic delay (2.5 ms lookahead): the default for a live relay.
        case restrictedLowDelay
        /// General audio/music; SILK/hybrid allowed, lookahead 6.5 ms.
        case audio
        /// Speech-optimised.
        case voip

        var rawValue: Int32 {
            switch self {
            case .restrictedLowDelay: OPUS_APPLICATION_RESTRICTED_LOWDELAY
            case .audio: OPUS_APPLICATION_AUDIO
            case .voip: OPUS_APPLICATION_VOIP
            }
        }
    }

    /// Frame duration. Small frames keep the relay's delay low: every page is written as soon
    /// as its single packet is encoded, so the frame length is the main packetisation delay.
    public enum FrameDuration: Sendable {
        case ms10
        case ms20

        /// Samples per channel at 48 kHz.
        public var samplesPerChannel: Int {
            switch self {
            case .ms10: 480
            case .ms20: 960
            }
        }
    }

    public let application: Application
    public let frameDuration: FrameDuration
    public let complexity: Int

    /// Samples per channel in one frame (480 or 960).
    public var samplesPerChannel: Int { frameDuration.samplesPerChannel }
    /// Interleaved `Int16` values `encode(pcm:)` expects: `samplesPerChannel * 2`.
    public var samplesPerFrame: Int { frameDuration.samplesPerChannel * Self.channels }

    /// The encoder's lookahead in 48 kHz samples (`OPUS_GET_LOOKAHEAD`). A decoder must drop
    /// this many samples at the start, so it is the Ogg/Opus header's pre-skip.
    public let lookahead: Int

    private let state: OpaquePointer

    /// - Parameters:
    ///   - bitrate: bits per second (default 64 kbit/s); libopus clamps out-of-range values.
    ///   - complexity: 0...10 (libopus default 10).
    ///   - frameDuration: 10 or 20 ms.
    ///   - application: see `Application`; `.restrictedLowDelay` by default.
    public init(
        bitrate: Int = 64_000,
        complexity: Int = 10,
        frameDuration: FrameDuration = .ms20,
        application: Application = .restrictedLowDelay
    ) throws {
        guard (0...10).contains(complexity) else {
            throw OggOpusError.opus(OPUS_BAD_ARG)
        }
        var error: Int32 = OPUS_OK
        guard let state = opus_encoder_create(
            opus_int32(Self.sampleRate), Int32(Self.channels), application.rawValue, &error
        ), error == OPUS_OK else {
            throw OggOpusError.opus(error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        // From here on `deinit` does not run if we throw, so destroy explicitly on failure.
        func check(_ rc: Int32) throws {
            if rc != OPUS_OK {
                opus_encoder_destroy(state)
                throw OggOpusError.opus(rc)
            }
        }
        try check(vmcloud_opus_set_bitrate(state, opus_int32(clamping: bitrate)))
        try check(vmcloud_opus_set_complexity(state, opus_int32(complexity)))
        var lookahead: opus_int32 = 0
        try check(vmcloud_opus_get_lookahead(state, &lookahead))

        self.state = state
        self.application = application
        self.frameDuration = frameDuration
        self.complexity = complexity
        self.lookahead = Int(lookahead)
    }

    deinit {
        opus_encoder_destroy(state)
    }

    /// The bitrate libopus is actually using, in bits per second (after clamping).
    public var bitrate: Int {
        var value: opus_int32 = 0
        _ = vmcloud_opus_get_bitrate(state, &value)
        return Int(value)
    }

    /// Encodes exactly one frame.
    /// - Parameter pcm: interleaved stereo samples (L, R, L, R, ...), `samplesPerFrame` values.
    /// - Returns: one Opus packet (at most `maxPacketBytes` bytes).
    /// - Throws: `OggOpusError.wrongFrameLength` for any other length, `.opus` if libopus fails.
    public func encode(pcm: [Int16]) throws -> [UInt8] {
        guard pcm.count == samplesPerFrame else {
            throw OggOpusError.wrongFrameLength(expected: samplesPerFrame, got: pcm.count)
        }
        var packet = [UInt8](repeating: 0, count: Self.maxPacketBytes)
        let frameSize = Int32(samplesPerChannel)
        let written = pcm.withUnsafeBufferPointer { input in
            packet.withUnsafeMutableBufferPointer { output in
                opus_encode(
                    state, input.baseAddress!, frameSize,
                    output.baseAddress!, opus_int32(Self.maxPacketBytes))
            }
        }
        guard written > 0 else {
            throw OggOpusError.opus(written == 0 ? OPUS_INTERNAL_ERROR : written)
        }
        packet.removeSubrange(Int(written)...)
        return packet
    }
}
