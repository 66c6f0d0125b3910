import COgg
import COpus

/// Muxes already-encoded Opus packets into one Ogg/Opus logical stream (RFC 7845) for one
/// listener.
///
/// The relay encodes each VM's audio once and gives every listener its own `OggOpusStream`:
/// muxing is cheap, and a separate stream per listener is what lets someone join mid-stream.
/// Each stream has its own serial number, its own two header pages (`headerPages`, built in
/// `init`) and a granule position that starts at that listener's first packet, so a decoder
/// sees an ordinary complete file that happens to start where the listener joined.
///
/// Every call to `pages(for:)` returns the complete page(s) for that packet right away (one page
/// per packet, flushed): a player gets each packet as soon as it is encoded instead of waiting
/// for a page to fill up, which is where `opusenc`'s default pipeline lost up to a second.
///
/// The class owns libogg's `ogg_stream_state` (heap-allocated, cleared and freed in `deinit`).
/// It is not `Sendable`: the state is mutable and must be used from one isolation domain.
public final class OggOpusStream {
    /// Logical stream serial number written in every page header.
    public let serialNumber: Int32
    /// Samples the decoder drops at the start (the encoder's lookahead).
    public let preSkip: Int
    /// The two header pages (OpusHead with BOS, then OpusTags), to send before any audio page.
    public private(set) var headerPages: [UInt8]
    /// Granule position of the last page written: 48 kHz samples since this stream's origin,
    /// pre-skip included (RFC 7845 section 4).
    public private(set) var granulePosition: Int64 = 0
    /// True once `finish()` has written the end-of-stream page.
    public private(set) var isFinished = false

    private let state: UnsafeMutablePointer<ogg_stream_state>
    private var packetNumber: Int64 = 0

    /// The Opus channel count written in OpusHead (the relay is always stereo).
    public static let channels = 2

    /// - Parameters:
    ///   - preSkip: `OpusEncoder.lookahead` of the encoder producing the packets.
    ///   - serialNumber: random by default; must differ between streams a client may chain.
    ///   - vendor: OpusTags vendor string (libopus' version string by default).
    ///   - comments: user comments ("KEY=value"); `["ENCODER=vmcloud"]` by default.
    public init(
        preSkip: Int,
        serialNumber: Int32 = Int32.random(in: Int32.min...Int32.max),
        vendor: String = String(cString: opus_get_version_string()),
        comments: [String] = ["ENCODER=vmcloud"]
    ) throws {
        guard (0...Int(UInt16.max)).contains(preSkip) else {
            throw OggOpusError.invalidPacket("pre-skip \(preSkip) does not fit in 16 bits")
        }
        self.preSkip = preSkip
        self.serialNumber = serialNumber
        state = .allocate(capacity: 1)
        guard ogg_stream_init(state, serialNumber) == 0 else {
            state.deallocate()
            throw OggOpusError.ogg("ogg_stream_init failed")
        }

        var head: [UInt8] = Array("OpusHead".utf8)
        head.append(1)                                   // version
        head.append(UInt8(Self.channels))                // output channel count
        head.appendLE(UInt16(preSkip))                   // pre-skip
        head.appendLE(UInt32(OpusEncoder.sampleRate))    // original input sample rate
        head.appendLE(UInt16(0))                         // output gain (Q7.8 dB)
        head.append(0)                                   // mapping family 0: mono/stereo

        var tags: [UInt8] = Array("OpusTags".utf8)
        tags.appendLE(UInt32(vendor.utf8.count))
        tags.append(contentsOf: vendor.utf8)
        tags.appendLE(UInt32(comments.count))
        for comment in comments {
            tags.appendLE(UInt32(comment.utf8.count))
            tags.append(contentsOf: comment.utf8)
        }

        // Each header packet must sit alone on its page(s); libogg sets BOS on the first.
        // Initialise the stored property before calling methods on self.
        headerPages = []
        var pages = try submit(head, granule: 0, endOfStream: false)
        pages += try submit(tags, granule: 0, endOfStream: false)
        headerPages = pages
    }

    deinit {
        ogg_stream_clear(state)
        state.deallocate()
    }

    /// Adds one Opus packet and returns the bytes of the page(s) carrying it (normally exactly
    /// one page), to be written to the listener immediately.
    /// - Throws: `.invalidPacket` if the packet's TOC is unreadable, `.streamFinished` after
    ///   `finish()`.
    public func pages(for packet: [UInt8]) throws -> [UInt8] {
        guard !isFinished else { throw OggOpusError.streamFinished }
        let samples = try Self.sampleCount(of: packet)
        return try submit(packet, granule: granulePosition + Int64(samples), endOfStream: false)
    }

    /// Ends the stream: returns a last page with the EOS flag. libogg can only flag a page that
    /// carries a packet, so it carries a 1-byte Opus packet holding one empty 2.5 ms CELT
    /// frame (decoded as 120 samples of concealment/silence). Returns `[]` if already finished.
    public func finish() -> [UInt8] {
        guard !isFinished else { return [] }
        // TOC: config 16 (CELT-only, 2.5 ms) << 3 | stereo << 2 | code 0; the frame is empty.
        let endPacket: [UInt8] = [16 << 3 | 1 << 2]
        let pages = (try? submit(endPacket, granule: granulePosition + 120, endOfStream: true)) ?? []
        isFinished = true
        return pages
    }

    /// Samples per channel at 48 kHz in `packet`, from its TOC byte(s).
    static func sampleCount(of packet: [UInt8]) throws -> Int {
        guard !packet.isEmpty else { throw OggOpusError.invalidPacket("empty packet") }
        let samples = packet.withUnsafeBufferPointer {
            opus_packet_get_nb_samples($0.baseAddress!, opus_int32($0.count), 48_000)
        }
        guard samples > 0, samples <= 5_760 else {   // at most 120 ms per packet
            throw OggOpusError.invalidPacket(
                samples < 0 ? String(cString: opus_strerror(samples)) : "\(samples) samples")
        }
        return Int(samples)
    }

    /// Feeds one packet into libogg and flushes it into complete pages.
    private func submit(_ data: [UInt8], granule: Int64, endOfStream: Bool) throws -> [UInt8] {
        var data = data
        let rc = data.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var packet = ogg_packet()
            packet.packet = buffer.baseAddress
            packet.bytes = buffer.count
            packet.b_o_s = packetNumber == 0 ? 1 : 0
            packet.e_o_s = endOfStream ? 1 : 0
            packet.granulepos = granule
            packet.packetno = packetNumber
            return ogg_stream_packetin(state, &packet)   // copies the data
        }
        guard rc == 0 else { throw OggOpusError.ogg("ogg_stream_packetin failed") }
        packetNumber += 1
        granulePosition = granule

        var out: [UInt8] = []
        var page = ogg_page()
        while ogg_stream_flush(state, &page) != 0 {
            out.append(contentsOf: UnsafeBufferPointer(start: page.header, count: page.header_len))
            out.append(contentsOf: UnsafeBufferPointer(start: page.body, count: page.body_len))
        }
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
