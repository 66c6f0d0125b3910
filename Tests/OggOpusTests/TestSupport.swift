import Foundation
@testable import OggOpus

/// Deterministic PRNG (SplitMix64) so "random" splits are reproducible and tests never flake.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Interleaved stereo sine, both channels equal, half full scale.
func stereoSine(frequency: Double, seconds: Double, rate: Int = 48_000) -> [Int16] {
    let count = Int(seconds * Double(rate))
    var out = [Int16](repeating: 0, count: count * 2)
    for i in 0..<count {
        let v = Int16(16_000 * sin(2 * .pi * frequency * Double(i) / Double(rate)))
        out[2 * i] = v
        out[2 * i + 1] = v
    }
    return out
}

/// Encodes `pcm` (a whole number of frames) into packets.
func encodeAll(_ pcm: [Int16], with encoder: OpusEncoder) throws -> [[UInt8]] {
    let n = encoder.samplesPerFrame
    return try stride(from: 0, to: pcm.count, by: n).map {
        try encoder.encode(pcm: Array(pcm[$0..<($0 + n)]))
    }
}

/// Whole Ogg/Opus file for one listener that receives `packets`.
func muxFile(_ packets: some Sequence<[UInt8]>, stream: OggOpusStream) throws -> [UInt8] {
    var bytes = stream.headerPages
    for packet in packets { bytes += try stream.pages(for: packet) }
    bytes += stream.finish()
    return bytes
}

struct DecodedWAV {
    var sampleRate: Int
    var channels: Int
    var samples: [Int16]   // interleaved
    var seconds: Double { Double(samples.count / channels) / Double(sampleRate) }

    /// Average of the channels.
    var mono: [Double] {
        stride(from: 0, to: samples.count - channels + 1, by: channels).map { i in
            (0..<channels).reduce(0.0) { $0 + Double(samples[i + $1]) } / Double(channels)
        }
    }
}

struct TestFailure: Error, CustomStringConvertible { var description: String }

/// Runs a tool, returning its exit status and combined output (one pipe, read to EOF before
/// waiting, so a chatty tool cannot block on a full pipe).
func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// `opusinfo`'s report on an Ogg/Opus stream (it prints "WARNING" for RFC 7845 violations).
func opusinfo(_ ogg: [UInt8]) throws -> (status: Int32, output: String) {
    let file = FileManager.default.temporaryDirectory
        .appendingPathComponent("oggopus-\(UUID().uuidString).opus")
    try Data(ogg).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    return try run("/usr/bin/opusinfo", [file.path])
}

/// Decodes Ogg/Opus bytes with the real `opusdec` and parses its 16-bit WAV output.
func decodeWithOpusdec(_ ogg: [UInt8]) throws -> (wav: DecodedWAV, log: String) {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("oggopus-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let input = dir.appendingPathComponent("in.opus")
    let output = dir.appendingPathComponent("out.wav")
    try Data(ogg).write(to: input)

    let (status, log) = try run("/usr/bin/opusdec", ["--rate", "48000", input.path, output.path])
    guard status == 0 else {
        throw TestFailure(description: "opusdec exited \(status): \(log)")
    }
    return (try parseWAV([UInt8](Data(contentsOf: output))), log)
}

func parseWAV(_ b: [UInt8]) throws -> DecodedWAV {
    func u32(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24 }
    func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
    guard b.count >= 12, Array(b[0..<4]) == Array("RIFF".utf8), Array(b[8..<12]) == Array("WAVE".utf8)
    else { throw TestFailure(description: "not a WAV file") }
    var offset = 12
    var rate = 0, channels = 0, bits = 0
    while offset + 8 <= b.count {
        let id = String(decoding: b[offset..<offset + 4], as: UTF8.self)
        let size = u32(offset + 4)
        let body = offset + 8
        if id == "fmt " {
            channels = u16(body + 2)
            rate = u32(body + 4)
            bits = u16(body + 14)
        } else if id == "data" {
            guard bits == 16, channels > 0 else { throw TestFailure(description: "fmt \(bits) bit") }
            let end = min(b.count, body + size)
            var samples: [Int16] = []
            samples.reserveCapacity((end - body) / 2)
            var i = body
            while i + 1 < end {
                samples.append(Int16(bitPattern: UInt16(b[i]) | UInt16(b[i + 1]) << 8))
                i += 2
            }
            return DecodedWAV(sampleRate: rate, channels: channels, samples: samples)
        }
        offset = body + size + (size & 1)
    }
    throw TestFailure(description: "no data chunk")
}

/// Goertzel power of `frequency` in `x`.
func goertzelPower(_ x: ArraySlice<Double>, frequency: Double, rate: Double) -> Double {
    let coefficient = 2 * cos(2 * .pi * frequency / rate)
    var s1 = 0.0, s2 = 0.0
    for v in x {
        let s = v + coefficient * s1 - s2
        s2 = s1
        s1 = s
    }
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// Frequency (50...5000 Hz, 10 Hz steps) with the most power over 0.1 s in the middle.
func dominantFrequency(_ wav: DecodedWAV) -> Double {
    let mono = wav.mono
    let window = wav.sampleRate / 10
    let start = max(0, mono.count / 2 - window / 2)
    let slice = mono[start..<min(mono.count, start + window)]
    return stride(from: 50.0, through: 5000.0, by: 10.0).max {
        goertzelPower(slice, frequency: $0, rate: Double(wav.sampleRate))
            < goertzelPower(slice, frequency: $1, rate: Double(wav.sampleRate))
    }!
}

struct OggPage {
    var headerType: UInt8
    var granule: Int64
    var serial: UInt32
    var sequence: UInt32
    var body: [UInt8]
    var isBOS: Bool { headerType & 2 != 0 }
    var isEOS: Bool { headerType & 4 != 0 }
}

/// Minimal Ogg page splitter for structural checks (CRC is left to opusdec).
func parsePages(_ b: [UInt8]) throws -> [OggPage] {
    var pages: [OggPage] = []
    var o = 0
    func le(_ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
    while o < b.count {
        guard o + 27 <= b.count, Array(b[o..<o + 4]) == Array("OggS".utf8) else {
            throw TestFailure(description: "bad page at \(o)")
        }
        let segments = Int(b[o + 26])
        let lacing = b[(o + 27)..<(o + 27 + segments)]
        let bodyLength = lacing.reduce(0) { $0 + Int($1) }
        let bodyStart = o + 27 + segments
        pages.append(OggPage(
            headerType: b[o + 5],
            granule: Int64(bitPattern: le(o + 6, 8)),
            serial: UInt32(le(o + 14, 4)),
            sequence: UInt32(le(o + 18, 4)),
            body: Array(b[bodyStart..<(bodyStart + bodyLength)])))
        o = bodyStart + bodyLength
    }
    return pages
}
