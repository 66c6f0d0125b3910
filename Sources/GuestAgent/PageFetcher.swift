// The file browser's page loads: after a configure it GETs the homepage the way a browser
// would (with the configured cookies that match, no redirects followed) and reports it as a
// captured page: no screenshot (there is no screen) and an MHTML of the response body.
//
// Only http:// URLs whose host is an IPv4 literal (the test VM reaches the host's loopback
// as 10.0.2.2): the agent has no DNS resolver and no TLS. Each load runs on its own thread, at
// most `maxConcurrent` at once, so a server that never answers holds up nothing else. A load
// sends under the Outbox generation read at configure time, and a reset cancels the loads in
// progress: a page loaded for one session never reaches the host after a reset.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AgentProtocol

final class PageFetcher: @unchecked Sendable {
    static let maxConcurrent = 4
    /// For the whole load: connect, request, response.
    static let timeout = 30.0
    /// Longer bodies are cut here (and captured as far as they go).
    static let maxBody = 4 << 20

    private let sender: PageSender
    private let lock = Lock()
    private var running = 0
    /// Shared by the loads of the current session; replaced by every reset.
    private var cancellation = Cancellation()

    init(sender: PageSender) { self.sender = sender }

    /// At configure time: what to start once the reply is queued, or nil (logged) when `url` is
    /// not a page this browser loads. Reads the generation now, before anything can block.
    func prepare(url: String, cookies: [Cookie]) -> (@Sendable () -> Void)? {
        let target: PageURL
        do {
            target = try PageURL(url)
        } catch {
            log("not loading \(url.prefix(200)): \(error)")
            return nil
        }
        let cookie = target.cookieHeader(cookies, now: Double(epochMilliseconds()) / 1000)
        let generation = sender.currentGeneration
        let cancellation = lock.withLock { self.cancellation }
        return { [self] in start(url: url, target, cookie: cookie, generation: generation, cancellation: cancellation) }
    }

    /// Cancels the loads in progress; later ones belong to the new session.
    func reset() {
        let old = lock.withLock {
            defer { cancellation = Cancellation() }
            return cancellation
        }
        old.cancel()
    }

    private func start(url: String, _ target: PageURL, cookie: String?, generation: UInt64, cancellation: Cancellation) {
        let started = lock.withLock {
            guard running < Self.maxConcurrent else { return false }
            running += 1
            return true
        }
        guard started else {
            log("not loading \(url.prefix(200)): \(Self.maxConcurrent) page loads already in progress")
            return
        }
        startThread("page-load") { [self] in
            defer { lock.withLock { running -= 1 } }
            load(url: url, target, cookie: cookie, generation: generation, cancellation: cancellation)
        }
    }

    private func load(url: String, _ target: PageURL, cookie: String?, generation: UInt64, cancellation: Cancellation) {
        let started = Deadline.now
        var headers = [("User-Agent", "vmcloud-guest-agent/\(agentVersion) (file browser)"),
                       ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")]
        if let cookie { headers.append(("Cookie", cookie)) }
        log("loading \(url.prefix(200)) from \(target.endpoint) (\(cookie == nil ? "no cookies" : "with cookies"))")
        let response: HTTPResponse
        do {
            response = try HTTPClient.get(target.endpoint, path: target.requestTarget, headers: headers, timeout: Self.timeout,
                                          maxBody: Self.maxBody, truncate: true, cancellation: cancellation)
        } catch {
            let why = cancellation.isCancelled ? "cancelled by a reset" : "\(error)"
            log("loading \(url.prefix(200)) failed after \((Deadline.now - started) / 1_000_000) ms: \(why); no capture")
            return
        }
        let time = epochMilliseconds()
        guard !cancellation.isCancelled else {
            log("loaded \(url.prefix(200)) but a reset came meanwhile; no capture")
            return
        }
        if response.truncated { log("\(url.prefix(200)): body cut at \(Self.maxBody) bytes") }
        if response.status >= 400 { log("\(url.prefix(200)): HTTP \(response.status); captured all the same") }
        let title = HTMLText.title(response.body)
        let mhtml = MHTML.document(url: url, title: title, html: response.body,
                                   charset: HTMLText.charset(response.headers["content-type"]), time: time)
        sender.send(url: url, title: title, time: time, screenshot: [], mhtml: mhtml, generation: generation, startedAt: started)
    }
}

/// A URL the file browser can load: http, an IPv4 literal host, an optional port.
struct PageURL: Equatable {
    struct Invalid: Error, CustomStringConvertible { let description: String }

    var endpoint: IPv4Endpoint
    /// The path (no query, no fragment), starting with "/": what cookie paths match against.
    var path: String
    /// What goes on the request line: path and query, bytes outside ASCII percent-encoded.
    var requestTarget: String

    init(_ url: String) throws {
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7f }) else {
            throw Invalid(description: "the URL contains spaces or control characters")
        }
        guard url.utf8.count > 7, url.prefix(7).lowercased() == "http://" else {
            throw Invalid(description: "only http:// URLs are loaded by the file browser")
        }
        let rest = url.dropFirst(7)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@") else { throw Invalid(description: "credentials in the URL are not supported") }
        var hostText = authority
        var port: UInt16 = 80
        if let colon = authority.lastIndex(of: ":") {
            hostText = authority[..<colon]
            let portText = authority[authority.index(after: colon)...]
            if !portText.isEmpty {
                guard portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                      let n = UInt16(portText), n > 0 else { throw Invalid(description: "bad port \(portText)") }
                port = n
            }
        }
        guard let address = IPv4Endpoint.parseAddress(hostText) else {
            throw Invalid(description: "the host \(hostText.prefix(100)) is not an IPv4 address (no name resolution in the file browser)")
        }
        endpoint = IPv4Endpoint(address: address, port: port)
        var remainder = rest[authorityEnd...]
        if let hash = remainder.firstIndex(of: "#") { remainder = remainder[..<hash] }
        let queryStart = remainder.firstIndex(of: "?") ?? remainder.endIndex
        let rawPath = remainder[..<queryStart].isEmpty ? "/" : String(remainder[..<queryStart])
        path = Self.percentEncoded(rawPath)
        requestTarget = path + Self.percentEncoded(String(remainder[queryStart...]))
    }

    var host: String { endpoint.addressText }

    /// `Cookie:` value of the cookies sent to this URL: domain equal to the host or a
    /// leading-dot domain the host ends with (or equals without the dot), path a prefix of the
    /// URL's path; not Secure ones (this is plain http) nor expired ones. Longer paths first,
    /// as browsers order them. Nil when none match.
    func cookieHeader(_ cookies: [Cookie], now: Double) -> String? {
        let matching = cookies.filter { cookie in
            let domain = cookie.domain.lowercased()
            let domainMatches = domain == host || (domain.hasPrefix(".") && (host.hasSuffix(domain) || host == domain.dropFirst()))
            let cookiePath = (cookie.path ?? "").isEmpty ? "/" : cookie.path!
            return domainMatches && path.hasPrefix(cookiePath) && cookie.secure != true && (cookie.expires.map { $0 > now } ?? true)
        }
        guard !matching.isEmpty else { return nil }
        let ordered = matching.enumerated().sorted { a, b in
            let (la, lb) = ((a.element.path ?? "/").utf8.count, (b.element.path ?? "/").utf8.count)
            return la != lb ? la > lb : a.offset < b.offset
        }
        return ordered.map { "\($0.element.name)=\($0.element.value)" }.joined(separator: "; ")
    }

    private static func percentEncoded(_ text: String) -> String {
        guard !text.utf8.allSatisfy({ $0 < 0x80 }) else { return text }
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            if byte < 0x80 { bytes.append(byte) } else { bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xf)]] }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Just enough HTML reading for a capture's title and charset.
enum HTMLText {
    /// The text of the first <title> element, entities decoded and white space collapsed; ""
    /// when there is none.
    static func title(_ html: [UInt8]) -> String {
        guard let open = find(Array("<title".utf8), in: html, from: 0) else { return "" }
        let after = open + 6
        guard after < html.count, [UInt8(ascii: ">"), 0x20, 0x09, 0x0a, 0x0d, 0x0c].contains(html[after]),
              let contentStart = html[after...].firstIndex(of: UInt8(ascii: ">")).map({ $0 + 1 }),
              let contentEnd = find(Array("</title".utf8), in: html, from: contentStart) else { return "" }
        let text = decodeEntities(String(decoding: html[contentStart..<contentEnd], as: UTF8.self))
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\u{0C}" })
            .joined(separator: " ")
    }

    /// The charset parameter of a Content-Type header, when it is a plain token.
    static func charset(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingSpaces().lowercased() == "charset" else { continue }
            var value = pair[1].trimmingSpaces()
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            let token = !value.isEmpty && value.count <= 40 && value.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e || $0 == 0x3a
            }
            return token ? value : nil
        }
        return nil
    }

    /// Index of `needle` (lower-case ASCII) in `haystack`, ASCII case-insensitively.
    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5a ? b | 0x20 : b }
        var i = start
        while i <= haystack.count - needle.count {
            if lower(haystack[i]) == needle[0] {
                var j = 1
                while j < needle.count && lower(haystack[i + j]) == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    private static let named: [String: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}"]

    /// &amp; &lt; &gt; &quot; &apos; &nbsp; and numeric references; anything else stays as is.
    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            rest = rest[amp...]
            if let semi = rest.prefix(12).firstIndex(of: ";") {
                let name = rest[rest.index(after: rest.startIndex)..<semi]
                var decoded: String?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    decoded = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                } else if name.hasPrefix("#") {
                    decoded = UInt32(name.dropFirst()).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                } else {
                    decoded = named[String(name)]
                }
                if let decoded {
                    out += decoded
                    rest = rest[rest.index(after: semi)...]
                    continue
                }
            }
            out += "&"
            rest = rest.dropFirst()
        }
        return out + rest
    }
}
