import AudioTestSupport
import Testing
@testable import OggOpus

@Suite("PCM framer")
struct PCMFramerTests {
    /// Little-endian bytes of interleaved samples, as PulseAudio delivers them.
    static func bytes(of samples: [Int16]) -> [UInt8] {
        samples.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }

    static func randomSamples(count: Int, seed: UInt64) -> [Int16] {
        var rng = SplitMix64(state: seed)
        return (0..<count).map { _ in Int16.random(in: .min ... .max, using: &rng) }
    }

    @Test("random chunk splits yield exactly the frames of the input", arguments: [1, 2, 3, 4])
    func randomSplits(seed: UInt64) {
        let frame = 960 * 2
        let samples = Self.randomSamples(count: frame * 25 + 77, seed: seed)   // plus a partial frame
        let bytes = Self.bytes(of: samples)
        var rng = SplitMix64(state: seed &* 1000)
        var framer = PCMFramer(samplesPerChannel: 960, maxBufferedFrames: 1000)
        var frames: [[Int16]] = []
        var offset = 0
        while offset < bytes.count {
            // Mostly odd sizes, including single bytes that split a sample.
            let size = min(bytes.count - offset, [1, 3, 7, 1001, 3839, 3841, 9999][Int.random(in: 0..<7, using: &rng)])
            frames += framer.frames(appending: bytes[offset..<offset + size])
            offset += size
        }
        #expect(frames.count == 25)
        for (i, f) in frames.enumerated() {
            #expect(f == Array(samples[(i * frame)..<((i + 1) * frame)]))
        }
        #expect(framer.partialBytes == 77 * 2)
        #expect(framer.droppedFrames == 0)
    }

    @Test("one byte at a time and one big lump agree")
    func byteByByte() {
        let samples = Self.randomSamples(count: 480 * 2 * 6, seed: 9)
        let bytes = Self.bytes(of: samples)
        var a = PCMFramer(samplesPerChannel: 480)
        var byByte: [[Int16]] = []
        for b in bytes { byByte += a.frames(appending: [b]) }
        var b = PCMFramer(samplesPerChannel: 480)
        #expect(byByte == b.frames(appending: bytes))
        #expect(byByte.count == 6)
        #expect(a.frames(appending: []).isEmpty)
    }

    @Test("the backlog is bounded: the oldest whole frames are dropped")
    func bounded() {
        let frame = 480 * 2
        let samples = Self.randomSamples(count: frame * 30 + 5, seed: 5)
        var framer = PCMFramer(samplesPerChannel: 480, maxBufferedFrames: 10)
        framer.append(Self.bytes(of: samples))
        #expect(framer.bufferedFrames == 10)
        #expect(framer.droppedFrames == 20)
        #expect(framer.nextFrame() == Array(samples[(20 * frame)..<(21 * frame)]))
        // The partial tail survives and is completed by the next chunk.
        #expect(framer.partialBytes == 10)
        framer.reset()
        #expect(framer.bufferedFrames == 0 && framer.partialBytes == 0)
        #expect(framer.nextFrame() == nil)
    }
}
