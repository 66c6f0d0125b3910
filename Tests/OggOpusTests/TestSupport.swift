import AudioTestSupport
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

/// `opusinfo`'s report on an Ogg/Opus stream (it prints "WARNING" for RFC 7845 violations).
func opusinfo(_ ogg: [UInt8]) throws -> (status: Int32, output: String) {
    let file = FileManager.default.temporaryDirectory
        .appendingPathComponent("oggopus-\(UUID().uuidString).opus")
    try Data(ogg).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    return try runCommand("/usr/bin/opusinfo", [file.path])
}

