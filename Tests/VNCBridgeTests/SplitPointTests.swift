import Testing
import VNCBridge

/// A WebSocket delivers the client's bytes in arbitrary frames, so the output must not depend on
/// where the stream is cut.
@Suite struct SplitPointTests {
    let session = RFB.noVNCSession()
    var input: [UInt8] { RFB.bytes(session) }

    @Test(arguments: [RFBClientStreamFilter.Mode.control, .view])
    func wholeStreamInOneChunk(mode: RFBClientStreamFilter.Mode) {
        let result = feed(input, cuts: [], mode: mode)
        #expect(result.error == nil)
        #expect(result.output == (mode == .control ? input : RFB.viewBytes(session)))
        #expect(result.filter.bufferedByteCount == 0)
        #expect(result.filter.bytesConsumed == input.count)
    }

    @Test(arguments: [RFBClientStreamFilter.Mode.control, .view])
    func everySingleSplitPoint(mode: RFBClientStreamFilter.Mode) {
        let expected = mode == .control ? input : RFB.viewBytes(session)
        for cut in 0...input.count {
            let result = feed(input, cuts: [cut], mode: mode)
            #expect(result.error == nil && result.output == expected, "cut at \(cut)")
        }
    }

    /// One byte at a time is every split point at once; also checks the buffer stays bounded.
    @Test(arguments: [RFBClientStreamFilter.Mode.control, .view])
    func oneByteChunks(mode: RFBClientStreamFilter.Mode) throws {
        var filter = RFBClientStreamFilter(mode: mode)
        var output: [UInt8] = []
        for byte in input {
            try filter.filter(CollectionOfOne(byte), into: &output)
            #expect(filter.bufferedByteCount <= (mode == .control ? RFBClientStreamFilter.maxHeaderLength : RFBClientStreamFilter.maxBufferedLength))
        }
        #expect(output == (mode == .control ? input : RFB.viewBytes(session)))
    }

    @Test(arguments: [RFBClientStreamFilter.Mode.control, .view])
    func randomChunkSizes(mode: RFBClientStreamFilter.Mode) {
        var rng = SeededGenerator(seed: 0x5eed_0001)
        let expected = mode == .control ? input : RFB.viewBytes(session)
        for iteration in 0..<500 {
            let cuts = randomCuts(count: input.count, maxChunk: 1 + iteration % 40, using: &rng)
            let result = feed(input, cuts: cuts, mode: mode)
            #expect(result.error == nil && result.output == expected, "cuts \(cuts)")
        }
    }

    /// In control mode a complete message is forwarded as soon as its header is validated;
    /// only an incomplete header is held back.
    @Test func controlModeHoldsBackOnlyIncompleteHeaders() throws {
        var filter = RFBClientStreamFilter(mode: .control)
        let handshake = RFB.handshake
        #expect(try filter.filter(handshake) == handshake)
        let pixelFormat = RFB.setPixelFormat().bytes
        #expect(try filter.filter(pixelFormat[0..<19]).isEmpty)
        #expect(filter.bufferedByteCount == 19)
        #expect(try filter.filter(pixelFormat[19...]) == pixelFormat)
        // Cut text payload streams through without waiting for its end.
        let cut = RFB.cutText(Array(repeating: 0x41, count: 100)).bytes
        #expect(try filter.filter(cut[0..<50]) == Array(cut[0..<50]))
        #expect(filter.bufferedByteCount == 0)
        #expect(try filter.filter(cut[50...]) == Array(cut[50...]))
    }

    /// Switching mode applies from the next message; a half-passed message completes as it began.
    @Test func modeSwitchAppliesAtMessageBoundary() throws {
        var filter = RFBClientStreamFilter(mode: .control)
        _ = try filter.filter(RFB.handshake)
        let cut = RFB.cutText(Array("abcdef".utf8)).bytes
        #expect(try filter.filter(cut[0..<10]) == Array(cut[0..<10]))
        filter.mode = .view
        #expect(try filter.filter(cut[10...]) == Array(cut[10...]))
        #expect(try filter.filter(RFB.key(down: true, keysym: 0x61).bytes).isEmpty)
        filter.mode = .control
        let key = RFB.key(down: false, keysym: 0x61).bytes
        #expect(try filter.filter(key) == key)
    }

    @Test func largestLegalMessagesPass() throws {
        let encodings = RFB.setEncodings((0..<1024).map { Int32($0) })
        let cut = RFB.cutText(Array(repeating: 0x7a, count: RFBClientStreamFilter.maxCutTextLength))
        let stream = RFB.bytes([RFB.version("RFB 003.007\n"), RFB.security(1), RFB.clientInit(shared: false), encodings, cut])
        var rng = SeededGenerator(seed: 7)
        let result = feed(stream, cuts: randomCuts(count: stream.count, maxChunk: 65536, using: &rng), mode: .control)
        // The exclusive-access request comes out as shared: no client disconnects the others.
        let shared = RFB.bytes([RFB.version("RFB 003.007\n"), RFB.security(1), RFB.clientInit(shared: true), encodings, cut])
        #expect(result.error == nil && result.output == shared)
        let view = feed(stream, cuts: [], mode: .view)
        #expect(view.error == nil && view.output == RFB.bytes([RFB.version("RFB 003.007\n"), RFB.security(1), RFB.clientInit(shared: true), encodings]))
    }
}
