// Encoding, decoding and validation of single messages.
import Testing
@testable import AgentProtocol

/// One valid message per kind. The exhaustive switch makes a new kind fail to compile here
/// until it gets a test sample.
func sample(_ kind: AgentMessage.Kind) -> AgentMessage {
    let cookie = Cookie(name: "sid", value: "a=b; c", domain: "example.org", path: "/")
    switch kind {
    case .hello: return AgentMessage(type: .hello, agentVersion: "1.2.3", ip: "10.0.2.15")
    case .configure:
        return AgentMessage(type: .configure, id: 7, homepage: "https://example.org/é?q=\"x\"\n", cookies: [cookie])
    case .configured: return AgentMessage(type: .configured, id: 7, homepage: "https://example.org/")
    case .reset: return AgentMessage(type: .reset, id: 8)
    case .resetDone: return AgentMessage(type: .resetDone, id: 8)
    case .status: return AgentMessage(type: .status, id: 9)
    case .state:
        return AgentMessage(type: .state, id: 9, ip: "10.0.2.15", homepage: "https://example.org/",
                            keyEvents: 2, pointerEvents: 40)
    case .ping: return AgentMessage(type: .ping, id: UInt64.max)
    case .pong: return AgentMessage(type: .pong, id: UInt64.max)
    case .error: return AgentMessage(type: .error, id: nil, message: "boom")
    case .navigate: return AgentMessage(type: .navigate, id: 10, url: "http://10.0.2.2:8000/two")
    case .navigated: return AgentMessage(type: .navigated, id: 10)
    case .page:
        return AgentMessage(type: .page, url: "http://10.0.2.2:8000/two", title: "Two", page: 3,
                            time: 1_790_000_000_000, screenshotBytes: 12345, mhtmlBytes: 678)
    case .blob:
        return AgentMessage(type: .blob, page: 3, part: .mhtml, offset: 0, data: "TUlNRQ==", final: true)
    case .browserCrashed: return AgentMessage(type: .browserCrashed, message: "chromium exited with 139")
    }
}

let allKinds: [AgentMessage.Kind] = [
    .hello, .configure, .configured, .reset, .resetDone, .status, .state, .ping, .pong, .error,
    .navigate, .navigated, .page, .blob, .browserCrashed,
]

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct AgentMessageTests {
    @Test(arguments: allKinds)
    func roundTrip(kind: AgentMessage.Kind) throws {
        let message = sample(kind)
        let line = message.encodedLine()
        #expect(line.last == UInt8(ascii: "\n"))
        // Exactly one newline: strings with newlines must be escaped, or framing breaks.
        #expect(line.filter { $0 == UInt8(ascii: "\n") }.count == 1)
        #expect(try AgentMessage.decode(line: line.dropLast()) == message)
    }

    @Test func stateCarriesInputCounts() throws {
        let state = AgentMessage(type: .state, id: 9, keyEvents: 3, pointerEvents: UInt64.max)
        let line = state.encodedLine()
        #expect(String(decoding: line, as: UTF8.self)
            == #"{"id":9,"keyEvents":3,"pointerEvents":18446744073709551615,"type":"state","v":1}"# + "\n")
        #expect(try AgentMessage.decode(line: line.dropLast()) == state)
        // An older agent sends no counts.
        let old = try AgentMessage.decode(line: bytes(#"{"v":1,"type":"state","id":9}"#))
        #expect(old.keyEvents == nil && old.pointerEvents == nil)
    }

    @Test func wireNamesAreStable() throws {
        let line = String(decoding: sample(.resetDone).encodedLine(), as: UTF8.self)
        #expect(line == #"{"id":8,"type":"reset_done","v":1}"# + "\n")
        let decoded = try AgentMessage.decode(line: bytes(#"{"v":1,"type":"hello"}"#))
        #expect(decoded == AgentMessage(type: .hello))
    }

    @Test(arguments: [AgentMessage.Kind.configure, .configured, .reset, .resetDone, .status, .state, .ping, .pong])
    func missingIDIsRejected(kind: AgentMessage.Kind) {
        var message = sample(kind)
        message.id = nil
        #expect(throws: AgentProtocolError.invalid("\(kind.rawValue) needs an id")) {
            try AgentMessage.decode(line: message.encodedLine().dropLast())
        }
    }

    @Test func configureNeedsAHomepage() {
        for homepage in [nil, ""] as [String?] {
            var message = sample(.configure)
            message.homepage = homepage
            #expect(throws: AgentProtocolError.invalid("configure needs a homepage")) {
                try message.validate()
            }
        }
    }

    @Test func wrongVersionIsRejected() {
        #expect(throws: AgentProtocolError.unsupportedVersion(2)) {
            try AgentMessage.decode(line: bytes(#"{"v":2,"type":"ping","id":1}"#))
        }
        #expect(throws: AgentProtocolError.unsupportedVersion(0)) {
            try AgentMessage.decode(line: bytes(#"{"v":0,"type":"hello"}"#))
        }
    }

    @Test(arguments: [
        "", "not json", "{}", #"{"type":"ping","id":1}"#, #"{"v":1,"type":"launch","id":1}"#,
        #"{"v":1,"type":"ping","id":-1}"#, #"{"v":1,"type":"ping","id":"1"}"#, #"[1,2]"#,
        #"{"v":1,"type":"configure","id":1,"homepage":"x","cookies":[{"name":"a"}]}"#,
    ])
    func malformedLinesAreRejected(line: String) {
        #expect {
            try AgentMessage.decode(line: bytes(line))
        } throws: { error in
            guard case .malformed = error as? AgentProtocolError else { return false }
            return true
        }
    }

    @Test func oversizeStringsAreRejected() {
        let cases: [(AgentMessage, String)] = [
            (AgentMessage(type: .hello, agentVersion: String(repeating: "v", count: 65)), "agentVersion longer than 64 bytes"),
            (AgentMessage(type: .hello, ip: String(repeating: "1", count: 65)), "ip longer than 64 bytes"),
            (AgentMessage(type: .configure, id: 1, homepage: String(repeating: "h", count: 8193)), "homepage longer than 8192 bytes"),
            (AgentMessage(type: .error, message: String(repeating: "m", count: 4097)), "message longer than 4096 bytes"),
            // Bytes, not characters: 2049 two-byte characters are 4098 bytes.
            (AgentMessage(type: .error, message: String(repeating: "é", count: 2049)), "message longer than 4096 bytes"),
        ]
        for (message, why) in cases {
            #expect(throws: AgentProtocolError.invalid(why)) { try message.validate() }
        }
    }

    @Test func limitsAreInclusiveAndAValidMessageFitsOnOneLine() throws {
        // 64 cookies of 500 bytes: every per-cookie bound and the total bound at their largest.
        let cookies = (0..<64).map { Cookie(name: "c\($0)", value: String(repeating: "x", count: 500 - 2 - "c\($0)".count), domain: "dd") }
        let message = AgentMessage(type: .configure, id: 1, homepage: String(repeating: "h", count: 8192), cookies: cookies)
        try message.validate()
        #expect(message.encodedLine().count <= agentMaxLineBytes)
        // One byte more in total is refused: a valid message always fits in one line.
        var over = cookies
        over[0].value += String(repeating: "x", count: agentMaxLineBytes / 2 - 64 * 500 + 1)
        #expect(throws: AgentProtocolError.invalid("cookies total more than \(agentMaxLineBytes / 2) bytes")) {
            try AgentMessage(type: .configure, id: 1, homepage: "https://a/", cookies: over).validate()
        }
    }

    @Test func cookieRulesAreEnforced() {
        func configure(_ cookies: [Cookie]) -> AgentMessage {
            AgentMessage(type: .configure, id: 1, homepage: "https://example.org/", cookies: cookies)
        }
        let ok = Cookie(name: "n", value: "v", domain: "example.org")
        let cases: [([Cookie], String)] = [
            (Array(repeating: ok, count: 65), "more than 64 cookies"),
            ([Cookie(name: "", value: "v", domain: "d")], "cookie without a name"),
            ([Cookie(name: String(repeating: "n", count: 257), value: "v", domain: "d")], "cookie name longer than 256 bytes"),
            ([Cookie(name: "n", value: String(repeating: "v", count: 4097), domain: "d")], "cookie value longer than 4096 bytes"),
            ([Cookie(name: "n", value: "v", domain: String(repeating: "d", count: 257))], "cookie domain longer than 256 bytes"),
            ([Cookie(name: "n", value: "v", domain: "d", path: String(repeating: "/", count: 1025))], "cookie path longer than 1024 bytes"),
        ]
        for (cookies, why) in cases {
            #expect(throws: AgentProtocolError.invalid(why)) { try configure(cookies).validate() }
        }
    }

    @Test func decodeRejectsOverlongLineBeforeParsing() {
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: agentMaxLineBytes + 1)
        #expect(throws: AgentProtocolError.lineTooLong(agentMaxLineBytes + 1)) {
            try AgentMessage.decode(line: line)
        }
    }

    @Test func pageAndBlobFieldsAreChecked() {
        var page = sample(.page)
        page.screenshotBytes = AgentMessage.BlobPart.screenshot.maxBytes + 1
        #expect(throws: AgentProtocolError.self) { try page.validate() }
        page = sample(.page)
        page.mhtmlBytes = -1
        #expect(throws: AgentProtocolError.self) { try page.validate() }
        page = sample(.page)
        page.time = nil
        #expect(throws: AgentProtocolError.invalid("page needs page, url and time")) { try page.validate() }
        var blob = sample(.blob)
        blob.offset = -5
        #expect(throws: AgentProtocolError.self) { try blob.validate() }
        blob = sample(.blob)
        blob.data = String(repeating: "A", count: agentMaxBlobChunkBase64 + 4)
        #expect(throws: AgentProtocolError.self) { try blob.validate() }
        var navigate = sample(.navigate)
        navigate.url = ""
        #expect(throws: AgentProtocolError.invalid("navigate needs a url")) { try navigate.validate() }
        var configure = sample(.configure)
        configure.cookies?[0].expires = -.infinity
        #expect(throws: AgentProtocolError.self) { try configure.validate() }
    }

    @Test func aFullBlobChunkFitsOnOneLine() {
        let blob = AgentMessage(type: .blob, page: UInt64.max, part: .screenshot, offset: Int.max,
                                data: String(repeating: "A", count: agentMaxBlobChunkBase64), final: false)
        #expect(blob.encodedLine().count <= agentMaxLineBytes)
    }
}
