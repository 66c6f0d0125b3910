/// One encoded Opus packet of a VM's audio, as every listener of that VM receives it.
public struct AudioPacket: Sendable, Equatable {
    /// Position in the VM's stream: +1 per packet, never reset while the VM exists (also not when
    /// capture stops and starts again), so a client sees skipped packets as gaps.
    public let sequence: UInt64
    /// When the packet's first sample entered the VM's sink: microseconds since the Unix epoch,
    /// strictly increasing along the stream.
    public let captureMicros: Int64
    /// Samples per channel the packet decodes to (480 for 10 ms at 48 kHz).
    public let samplesPerChannel: Int
    /// The Opus packet.
    public let opus: [UInt8]

    public init(sequence: UInt64, captureMicros: Int64, samplesPerChannel: Int, opus: [UInt8]) {
        self.sequence = sequence
        self.captureMicros = captureMicros
        self.samplesPerChannel = samplesPerChannel
        self.opus = opus
    }

    /// Bytes of the header in front of the Opus packet in a WebSocket message.
    public static let wireHeaderBytes = 16

    /// The packet as one binary WebSocket message: sequence (u64) and capture time (i64, µs since
    /// the Unix epoch), both big-endian, then the Opus packet.
    public var wireMessage: [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.wireHeaderBytes + opus.count)
        withUnsafeBytes(of: sequence.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: captureMicros.bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: opus)
        return bytes
    }

    /// Parses a WebSocket message made by `wireMessage`; nil if it is too short.
    public init?(wireMessage bytes: [UInt8], samplesPerChannel: Int) {
        guard bytes.count > Self.wireHeaderBytes else { return nil }
        var sequence: UInt64 = 0
        var micros: UInt64 = 0
        for i in 0..<8 {
            sequence = sequence << 8 | UInt64(bytes[i])
            micros = micros << 8 | UInt64(bytes[8 + i])
        }
        self.init(sequence: sequence, captureMicros: Int64(bitPattern: micros), samplesPerChannel: samplesPerChannel,
                  opus: Array(bytes[Self.wireHeaderBytes...]))
    }
}
