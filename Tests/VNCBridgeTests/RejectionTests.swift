import Testing
import VNCBridge

/// Everything that ends a session, and what is (not) forwarded before it ends.
@Suite struct RejectionTests {
    func error(after messages: [ClientMessage], then bad: [UInt8], mode: RFBClientStreamFilter.Mode = .control) -> RFBFilterError? {
        let good = RFB.bytes(messages)
        let result = feed(good + bad, cuts: [], mode: mode)
        // Nothing of the rejected message reaches the server.
        #expect(result.output == (mode == .control ? good : RFB.viewBytes(messages)))
        return result.error
    }

    @Test(arguments: [
        ("RFB 003.00x\n", RFBFilterError.malformedVersion),
        ("RFX 003.008\n", .malformedVersion),
        ("RFB 003.008\r", .malformedVersion),
        ("RFB 003-008\n", .malformedVersion),
        ("GET / HTTP/1", .malformedVersion),
        ("RFB 003.003\n", .unsupportedVersion(major: 3, minor: 3)),
        ("RFB 003.005\n", .unsupportedVersion(major: 3, minor: 5)),
        ("RFB 004.001\n", .unsupportedVersion(major: 4, minor: 1)),
    ])
    func badVersions(version: String, expected: RFBFilterError) {
        #expect(error(after: [], then: Array(version.utf8)) == expected)
    }

    @Test(arguments: [
        (UInt8(2), RFBFilterError.vncAuthSelected),
        (0, .unsupportedSecurityType(0)),
        (16, .unsupportedSecurityType(16)),
        (19, .unsupportedSecurityType(19)),
    ])
    func securityTypesOtherThanNone(type: UInt8, expected: RFBFilterError) {
        #expect(error(after: [RFB.version()], then: [type]) == expected)
    }

    /// 150 (EnableContinuousUpdates) and 248 (ClientFence) are real RFB extensions QEMU lacks:
    /// it would drop the connection, so the filter does first.
    @Test(arguments: [UInt8(1), 7, 8, 127, 150, 248, 252, 254])
    func unknownMessageTypes(type: UInt8) {
        #expect(error(after: RFB.noVNCSession(), then: [type, 0, 0, 0]) == .unknownMessageType(type))
        #expect(error(after: RFB.noVNCSession(), then: [type], mode: .view) == .unknownMessageType(type))
    }

    @Test func unknownQEMUMessages() {
        let session = RFB.noVNCSession()
        #expect(error(after: session, then: [255, 2, 0, 0]) == .unknownQEMUSubtype(2))
        #expect(error(after: session, then: [255, 1, 0, 3], mode: .view) == .unknownQEMUAudioOperation(3))
    }

    @Test func oversizedCutText() {
        let session = RFB.noVNCSession()
        let limit = UInt32(RFBClientStreamFilter.maxCutTextLength)
        #expect(error(after: session, then: [6, 0, 0, 0] + RFB.be32(limit + 1)) == .cutTextTooLong(Int(limit) + 1))
        // Extended clipboard: negative length, same limit on its magnitude.
        let negative = UInt32(bitPattern: -Int32(limit) - 1)
        #expect(error(after: session, then: [6, 0, 0, 0] + RFB.be32(negative), mode: .view) == .cutTextTooLong(Int(limit) + 1))
        #expect(error(after: session, then: [6, 0, 0, 0, 0x80, 0, 0, 0]) == .cutTextTooLong(1 << 31))
    }

    @Test func oversizedSetEncodings() {
        let session = RFB.noVNCSession()
        #expect(error(after: session, then: [2, 0] + RFB.be16(1025)) == .tooManyEncodings(1025))
        #expect(error(after: session, then: [2, 0, 0xff, 0xff], mode: .view) == .tooManyEncodings(65535))
    }

    /// Once failed, the filter stays failed: a bridge that keeps feeding cannot resync on garbage.
    @Test func errorIsSticky() {
        var filter = RFBClientStreamFilter(mode: .control)
        #expect(throws: RFBFilterError.malformedVersion) { try filter.filter(Array("RFB 003.0a8\n".utf8)) }
        #expect(filter.failure == .malformedVersion)
        #expect(throws: RFBFilterError.malformedVersion) { try filter.filter(RFB.handshake) }
    }

    @Test func errorsDescribeThemselves() {
        #expect(RFBFilterError.cutTextTooLong(5).description.contains("5 bytes"))
        #expect(RFBFilterError.unknownMessageType(9).description.contains("9"))
    }
}
