import Testing
import VNCBridge

/// Random bytes and mutated sessions, cut at random: the filter must never trap, must only ever
/// forward bytes of its input in order, and must not depend on how the input was cut.
@Suite struct FuzzTests {
    static let valid = RFB.bytes(RFB.noVNCSession())

    @Test func randomBytes() {
        var rng = SeededGenerator(seed: 0xf022_0001)
        var outcomes = (errors: 0, clean: 0)
        for _ in 0..<2000 {
            // Half start with a valid handshake so the message parser sees the garbage.
            let prefix = Bool.random(using: &rng) ? RFB.handshake : []
            let junk = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            check(prefix + junk, using: &rng, counting: &outcomes)
        }
        #expect(outcomes.errors > 1000 && outcomes.clean > 10, "\(outcomes)")
    }

    @Test func mutatedSessions() {
        var rng = SeededGenerator(seed: 0xf022_0002)
        var outcomes = (errors: 0, clean: 0)
        for _ in 0..<3000 {
            var input = Self.valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 0..<input.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: input[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: input.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                case 2: input.remove(at: at)
                default: input.removeSubrange(at...)
                }
                if input.isEmpty { break }
            }
            check(input, using: &rng, counting: &outcomes)
        }
        // The mutations must exercise both outcomes, or the test proves little.
        #expect(outcomes.errors > 300 && outcomes.clean > 300, "\(outcomes)")
    }

    func check(_ input: [UInt8], using rng: inout SeededGenerator, counting outcomes: inout (errors: Int, clean: Int)) {
        let mode: RFBClientStreamFilter.Mode = Bool.random(using: &rng) ? .control : .view
        let whole = feed(input, cuts: [], mode: mode)
        // The filter forces ClientInit's shared flag (byte 13, after version and security) to 1.
        var expected = input
        if expected.count > 13 { expected[13] = 1 }
        let chunked = feed(input, cuts: randomCuts(count: input.count, maxChunk: 16, using: &rng), mode: mode)
        #expect(whole.output == chunked.output && whole.error == chunked.error, "input \(input)")
        if whole.error == nil { outcomes.clean += 1 } else { outcomes.errors += 1 }
        // A view session's SetEncodings without the clipboard encoding has a new count, the
        // one byte the filter makes up (ClipboardEncodingTests checks it exactly).
        if mode == .control || !containsClipboardEncoding(input) {
            #expect(isSubsequence(whole.output, of: expected), "input \(input)")
        }
        #expect(chunked.filter.bufferedByteCount <= (mode == .control ? RFBClientStreamFilter.maxHeaderLength : RFBClientStreamFilter.maxBufferedLength))
        if mode == .control {
            // Control mode drops nothing: output is a prefix, short only by a held-back header
            // (or, after an error, by the rejected message and what followed).
            #expect(Array(expected.prefix(whole.output.count)) == whole.output)
            if whole.error == nil {
                #expect(whole.output.count + whole.filter.bufferedByteCount == input.count)
            }
        }
    }

    func containsClipboardEncoding(_ input: [UInt8]) -> Bool {
        let pattern: [UInt8] = [0xC0, 0xA1, 0xE5, 0xCE]
        return input.count >= 4 && (0...input.count - 4).contains { Array(input[$0..<$0 + 4]) == pattern }
    }

    func isSubsequence(_ small: [UInt8], of big: [UInt8]) -> Bool {
        var j = 0
        for byte in big where j < small.count && small[j] == byte { j += 1 }
        return j == small.count
    }
}
