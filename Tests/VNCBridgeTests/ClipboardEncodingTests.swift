import Testing
import VNCBridge

/// QEMU sends the VM's clipboard only to clients whose SetEncodings lists the extended clipboard
/// pseudo-encoding: a view session's list is forwarded without it (count adjusted), a control
/// session's unchanged. Sending clipboard (ClientCutText) stays control-only.
@Suite struct ClipboardEncodingTests {
    let clip = RFB.extendedClipboard

    func forwarded(_ messages: [ClientMessage], mode: RFBClientStreamFilter.Mode, cuts: [Int] = []) throws -> [UInt8] {
        let input = RFB.handshake + RFB.bytes(messages)
        let result = feed(input, cuts: cuts.map { $0 + RFB.handshake.count }, mode: mode)
        if let error = result.error { throw error }
        #expect(result.filter.bufferedByteCount == 0)
        return Array(result.output.dropFirst(RFB.handshake.count))
    }

    @Test func viewSessionLosesTheClipboardEncoding() throws {
        let out = try forwarded([RFB.setEncodings([7, 0, -223, clip])], mode: .view)
        #expect(out == RFB.setEncodings([7, 0, -223]).bytes)
        #expect(out[2...3] == [0, 3], "the count says three encodings")
    }

    @Test func controlSessionKeepsIt() throws {
        let message = RFB.setEncodings([7, 0, -223, clip])
        #expect(try forwarded([message], mode: .control) == message.bytes)
    }

    /// Anywhere in the list, any number of times (a hostile client repeats it), even alone.
    @Test(arguments: [
        [Int32(bitPattern: 0xC0A1_E5CE), 5, 0],
        [5, Int32(bitPattern: 0xC0A1_E5CE), 0, Int32(bitPattern: 0xC0A1_E5CE)],
        [Int32(bitPattern: 0xC0A1_E5CE)],
        [],
    ])
    func everyCopyIsRemoved(list: [Int32]) throws {
        let out = try forwarded([RFB.setEncodings(list)], mode: .view)
        #expect(out == RFB.setEncodings(list.filter { $0 != clip }).bytes)
    }

    /// A list without the encoding passes unchanged; near misses are other encodings.
    @Test func otherEncodingsPass() throws {
        let list: [Int32] = [Int32(bitPattern: 0xC0A1_E5CF), Int32(bitPattern: 0xCEE5_A1C0), -308, 0]
        let message = RFB.setEncodings(list)
        #expect(try forwarded([message], mode: .view) == message.bytes)
    }

    /// The rewritten message does not depend on where the WebSocket cut the stream, and the
    /// messages around it pass in order.
    @Test func everySplitPoint() throws {
        let messages = [RFB.setPixelFormat(), RFB.setEncodings([16, clip, 0, -239]), RFB.updateRequest(incremental: false)]
        let expected = RFB.viewBytes(messages)
        #expect(expected != RFB.bytes(messages))
        for cut in 0...RFB.bytes(messages).count {
            #expect(try forwarded(messages, mode: .view, cuts: [cut]) == expected, "cut at \(cut)")
        }
    }

    /// The longest legal list is held back whole, then forwarded rewritten.
    @Test func largestListIsBoundedAndRewritten() throws {
        var list = (0..<1023).map { Int32($0) }
        list.insert(clip, at: 500)
        let bytes = RFB.handshake + RFB.setEncodings(list).bytes
        var filter = RFBClientStreamFilter(mode: .view)
        var output: [UInt8] = []
        try filter.filter(bytes.dropLast(), into: &output)
        #expect(filter.bufferedByteCount == RFBClientStreamFilter.maxBufferedLength - 1)
        try filter.filter(bytes.suffix(1), into: &output)
        #expect(Array(output.dropFirst(RFB.handshake.count)) == RFB.setEncodings(list.filter { $0 != clip }).bytes)
    }

    /// Plain and extended ClientCutText reach the VM from a control session only.
    @Test func cutTextIsControlOnly() throws {
        let plain = RFB.cutText(Array("from the viewer".utf8))
        let extended = RFB.cutText([0x10, 0, 0, 1] + Array(repeating: 0x78, count: 9), length: -13)
        #expect(try forwarded([plain, extended], mode: .control) == plain.bytes + extended.bytes)
        #expect(try forwarded([plain, extended], mode: .view).isEmpty)
    }
}
