import AudioTestSupport
import Foundation
import Testing
@testable import OggOpus

@Suite("Ogg/Opus stream decoded by opusdec")
struct OggOpusStreamTests {
    @Test("2 s of 1 kHz, 20 ms frames: opusdec decodes 2 s of 1 kHz")
    func fullStream() throws {
        let encoder = try OpusEncoder(frameDuration: .ms20)
        let packets = try encodeAll(stereoSine(frequency: 1000, seconds: 2), with: encoder)
        #expect(packets.count == 100)
        let stream = try OggOpusStream(preSkip: encoder.lookahead)
        let file = try muxFile(packets, stream: stream)

        let (wav, log) = try decodeWithOpusdec(file)
        #expect(wav.sampleRate == 48_000, "\(log)")
        #expect(wav.channels == 2)
        #expect(abs(wav.seconds - 2.0) <= 0.040, "decoded \(wav.seconds) s")
        let peak = dominantFrequency(wav)
        #expect(abs(peak - 1000) <= 20, "dominant \(peak) Hz")

        let info = try opusinfo(file)
        #expect(info.status == 0)
        #expect(!info.output.localizedCaseInsensitiveContains("warning"), "\(info.output)")
        #expect(info.output.contains("Pre-skip: \(encoder.lookahead)"), "\(info.output)")
    }

    @Test("page structure: BOS OpusHead, OpusTags, one page per packet, granules, EOS")
    func pageStructure() throws {
        let encoder = try OpusEncoder(frameDuration: .ms20)
        let packets = try encodeAll(stereoSine(frequency: 1000, seconds: 0.2), with: encoder)
        let stream = try OggOpusStream(preSkip: encoder.lookahead, serialNumber: 0x1234_5678)

        var pages = try parsePages(stream.headerPages)
        #expect(pages.count == 2)
        for packet in packets {
            let bytes = try stream.pages(for: packet)
            let single = try parsePages(bytes)
            #expect(single.count == 1)               // each packet flushed on its own page
            #expect(single.first?.body == packet)
            pages += single
        }
        pages += try parsePages(stream.finish())
        #expect(stream.finish().isEmpty)

        #expect(pages.count == 2 + packets.count + 1)
        #expect(pages.allSatisfy { $0.serial == 0x1234_5678 })
        #expect(pages.map(\.sequence) == (0..<UInt32(pages.count)).map { $0 })
        #expect(pages[0].isBOS && !pages[1].isBOS)
        #expect(pages.dropLast().allSatisfy { !$0.isEOS })
        #expect(pages.last!.isEOS)

        let head = pages[0].body
        #expect(head.count == 19)
        #expect(Array(head[0..<8]) == Array("OpusHead".utf8))
        #expect(head[8] == 1 && head[9] == 2)
        #expect(Int(head[10]) | Int(head[11]) << 8 == encoder.lookahead)
        #expect(Array(head[12..<16]) == [0x80, 0xBB, 0x00, 0x00])   // 48000
        #expect(Array(head[16..<19]) == [0, 0, 0])                    // gain 0, mapping 0
        let tags = pages[1].body
        #expect(Array(tags[0..<8]) == Array("OpusTags".utf8))
        #expect(String(decoding: tags, as: UTF8.self).hasSuffix("ENCODER=vmcloud"))
        #expect(pages[0].granule == 0 && pages[1].granule == 0)

        let audioGranules = pages[2...].map(\.granule)
        let expected = (1...Int64(packets.count)).map { $0 * 960 } + [Int64(packets.count) * 960 + 120]
        #expect(audioGranules == expected)
        #expect(stream.granulePosition == expected.last)
    }

    @Test("a listener joining mid-stream gets its own headers, serial and granule origin")
    func midStreamListener() throws {
        let encoder = try OpusEncoder(frameDuration: .ms20)
        let packets = try encodeAll(stereoSine(frequency: 1000, seconds: 2), with: encoder)

        // The relay encodes once and muxes for each listener as packets arrive.
        let early = try OggOpusStream(preSkip: encoder.lookahead)
        var earlyBytes = early.headerPages
        var late: OggOpusStream?
        var lateBytes: [UInt8] = []
        for (index, packet) in packets.enumerated() {
            if index == 50 {
                let listener = try OggOpusStream(preSkip: encoder.lookahead)
                lateBytes = listener.headerPages
                late = listener
            }
            earlyBytes += try early.pages(for: packet)
            if let late { lateBytes += try late.pages(for: packet) }
        }
        earlyBytes += early.finish()
        let lateStream = try #require(late)
        lateBytes += lateStream.finish()
        #expect(early.serialNumber != lateStream.serialNumber)

        let latePages = try parsePages(lateBytes)
        #expect(latePages[0].isBOS && latePages[0].sequence == 0)
        #expect(latePages[2].granule == 960)   // its own origin, not the VM's
        #expect(latePages.allSatisfy { $0.serial == UInt32(bitPattern: lateStream.serialNumber) })

        let (lateWAV, log) = try decodeWithOpusdec(lateBytes)
        #expect(abs(lateWAV.seconds - 1.0) <= 0.040, "decoded \(lateWAV.seconds) s; \(log)")
        let latePeak = dominantFrequency(lateWAV)
        #expect(abs(latePeak - 1000) <= 20, "dominant \(latePeak) Hz")

        let info = try opusinfo(lateBytes)
        #expect(info.status == 0)
        #expect(!info.output.localizedCaseInsensitiveContains("warning"), "\(info.output)")

        let (earlyWAV, _) = try decodeWithOpusdec(earlyBytes)
        #expect(abs(earlyWAV.seconds - 2.0) <= 0.040, "decoded \(earlyWAV.seconds) s")
    }

    @Test("other encoder settings decode too", arguments: [
        (OpusEncoder.FrameDuration.ms10, OpusEncoder.Application.restrictedLowDelay),
        (.ms10, .audio),
        (.ms20, .audio),
    ])
    func otherSettings(duration: OpusEncoder.FrameDuration, application: OpusEncoder.Application) throws {
        let encoder = try OpusEncoder(
            bitrate: 96_000, complexity: 5, frameDuration: duration, application: application)
        let packets = try encodeAll(stereoSine(frequency: 1000, seconds: 1), with: encoder)
        let file = try muxFile(packets, stream: try OggOpusStream(preSkip: encoder.lookahead))
        let (wav, _) = try decodeWithOpusdec(file)
        #expect(abs(wav.seconds - 1.0) <= 0.040, "decoded \(wav.seconds) s")
        let peak = dominantFrequency(wav)
        #expect(abs(peak - 1000) <= 20, "dominant \(peak) Hz")
    }

    @Test("invalid packets and packets after finish are rejected")
    func badPackets() throws {
        let stream = try OggOpusStream(preSkip: 120)
        #expect(throws: OggOpusError.self) { try stream.pages(for: []) }
        // Code 3 TOC with no frame-count byte is malformed.
        #expect(throws: OggOpusError.self) { try stream.pages(for: [0xFF]) }
        _ = stream.finish()
        #expect(stream.isFinished)
        #expect(throws: OggOpusError.streamFinished) { try stream.pages(for: [0xFC, 0x00]) }
        #expect(throws: OggOpusError.self) { try OggOpusStream(preSkip: 70_000) }
    }
}
