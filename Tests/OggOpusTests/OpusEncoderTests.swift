import AudioTestSupport
import Testing
@testable import OggOpus

@Suite("Opus encoder")
struct OpusEncoderTests {
    @Test("settings reach libopus through the ctl shim")
    func settings() throws {
        let encoder = try OpusEncoder()
        #expect(encoder.bitrate == 64_000)
        #expect(encoder.samplesPerChannel == 960 && encoder.samplesPerFrame == 1920)
        #expect(encoder.lookahead == 120)     // CELT-only: 2.5 ms at 48 kHz
        let audio = try OpusEncoder(bitrate: 32_000, frameDuration: .ms10, application: .audio)
        #expect(audio.bitrate == 32_000)
        #expect(audio.samplesPerFrame == 960)
        #expect(audio.lookahead > encoder.lookahead)
    }

    @Test("packets fit the limit and carry one frame")
    func packets() throws {
        let encoder = try OpusEncoder(frameDuration: .ms10)
        let packet = try encoder.encode(pcm: Array(stereoSine(frequency: 440, seconds: 0.01)))
        #expect(!packet.isEmpty && packet.count <= OpusEncoder.maxPacketBytes)
        #expect(try OggOpusStream.sampleCount(of: packet) == 480)
    }

    @Test("wrong frame lengths and bad settings throw")
    func badInput() throws {
        let encoder = try OpusEncoder(frameDuration: .ms20)
        for count in [0, 1, 959, 960, 1919, 1921, 3840] {
            #expect(throws: OggOpusError.wrongFrameLength(expected: 1920, got: count)) {
                try encoder.encode(pcm: [Int16](repeating: 0, count: count))
            }
        }
        #expect(throws: OggOpusError.self) { try OpusEncoder(complexity: 11) }
        #expect(throws: OggOpusError.self) { try OpusEncoder(complexity: -1) }
        // Still usable after rejected input.
        #expect(try !encoder.encode(pcm: [Int16](repeating: 0, count: 1920)).isEmpty)
    }
}
