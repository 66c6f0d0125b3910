// The guest agent's file browser (the test image's): after a configure it loads the homepage
// from an IPv4 http:// URL with the matching cookies and reports it as a captured page (no
// screenshot, an MHTML of the body); loads never hold up replies, and a reset abandons them.
import AgentProtocol
import Foundation
import Glibc
import Testing

private let servedBody = "<p>served body 7f3e-file-browser</p>"
private let pages = [
    "/site/a.html": "<html><head><title>\n  File &amp; Page  </title></head><body>\(servedBody)</body></html>",
    "/b.html": "<html><head><title>Page B</title></head><body><p>second page</p></body></html>",
    "/after.html": "<html><head><title>After reset</title></head><body><p>after the reset</p></body></html>",
    "/hang.html": "<html><head><title>Too late</title></head><body><p>late answer</p></body></html>",
    // 5 MiB: over the 4 MiB body cap.
    "/big.html": "<html><head><title>Big</title></head><body>" + String(repeating: "0123456789abcdef", count: 5 << 16) + "</body></html>",
]

/// One agent (file browser) and one server per test.
private func withAgent(_ name: String, held: Set<String> = [], _ body: (AgentHarness, TestHTTPServer) throws -> Void) throws {
    let server = try TestHTTPServer(pages: pages, held: held)
    defer { server.stop() }
    let agent = try AgentHarness(name: name, browser: .file)
    defer { agent.stop() }
    _ = try agent.next(timeout: 20, "hello") { $0.type == .hello }
    try body(agent, server)
}

/// Sends a configure and returns its reply, checking it came quickly (the load runs afterwards).
@discardableResult
private func configure(_ agent: AgentHarness, id: UInt64, _ homepage: String, cookies: [Cookie] = []) throws -> AgentMessage {
    let started = Date()
    agent.send(AgentMessage(type: .configure, id: id, homepage: homepage, cookies: cookies))
    let reply = try agent.reply(to: id, timeout: 10)
    #expect(reply.type == .configured, "\(reply)")
    #expect(reply.homepage == homepage)
    #expect(Date().timeIntervalSince(started) < 3, "configure took \(Date().timeIntervalSince(started)) s")
    return reply
}

private func reset(_ agent: AgentHarness, id: UInt64) throws {
    agent.send(AgentMessage(type: .reset, id: id))
    #expect(try agent.reply(to: id, timeout: 10).type == .resetDone)
}

/// The MHTML's parts: its header block, and the single part's headers and body.
private func parseMHTML(_ bytes: [UInt8]) throws -> (head: String, partHead: String, body: String) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let headEnd = text.range(of: "\r\n\r\n") else { throw TestFailure("MHTML without a header block") }
    let head = String(text[..<headEnd.lowerBound])
    guard let b = head.range(of: "boundary=\"") , let bEnd = head[b.upperBound...].firstIndex(of: "\"") else {
        throw TestFailure("MHTML without a boundary: \(head)")
    }
    let boundary = String(head[b.upperBound..<bEnd])
    let rest = text[headEnd.upperBound...]
    guard rest.hasPrefix("--\(boundary)\r\n"), let close = rest.range(of: "\r\n--\(boundary)--\r\n") else {
        throw TestFailure("MHTML part not delimited by its boundary")
    }
    // Counted in Characters like `rest` ("\r\n" is one).
    let part = rest.dropFirst("--\(boundary)\r\n".count)[..<close.lowerBound]
    guard let partHeadEnd = part.range(of: "\r\n\r\n") else { throw TestFailure("MHTML part without headers") }
    #expect(close.upperBound == rest.endIndex, "bytes after the closing boundary")
    return (head, String(part[..<partHeadEnd.lowerBound]), String(part[partHeadEnd.upperBound...]))
}

@Suite struct FileBrowserAgentTests {
    @Test func loadsHomepageWithMatchingCookiesAndSendsItsMHTML() throws {
        try withAgent("file-capture") { agent, server in
            let url = server.url("/site/a.html")
            let cookies = [
                Cookie(name: "sess", value: "v1", domain: "127.0.0.1"),
                Cookie(name: "dotted", value: "v2", domain: ".0.0.1"),
                Cookie(name: "pathok", value: "v3", domain: "127.0.0.1", path: "/site"),
                Cookie(name: "otherhost", value: "n1", domain: "10.0.0.1"),
                Cookie(name: "otherpath", value: "n2", domain: "127.0.0.1", path: "/elsewhere"),
                Cookie(name: "secureonly", value: "n3", domain: "127.0.0.1", secure: true),
                Cookie(name: "expired", value: "n4", domain: "127.0.0.1", expires: 1000),
                Cookie(name: "suffixonly", value: "n5", domain: "0.0.1"),
            ]
            try configure(agent, id: 1, url, cookies: cookies)
            let page = try agent.page(timeout: 20) { $0 == url }
            #expect(page.message.title == "File & Page")
            #expect(page.message.screenshotBytes == 0 && page.screenshot.isEmpty)
            #expect(page.message.mhtmlBytes == page.mhtml.count)
            #expect(page.message.time.map { abs($0 - Int64(Date().timeIntervalSince1970 * 1000)) < 60_000 } == true)

            let (head, partHead, body) = try parseMHTML(page.mhtml)
            #expect(head.contains("Content-Type: multipart/related;"), "\(head)")
            #expect(head.contains("type=\"text/html\""), "\(head)")
            #expect(head.contains("Snapshot-Content-Location: \(url)\r\n"), "\(head)")
            #expect(head.contains("MIME-Version: 1.0"), "\(head)")
            #expect(partHead.contains("Content-Type: text/html; charset=utf-8"), "\(partHead)")
            #expect(partHead.contains("Content-Location: \(url)"), "\(partHead)")
            #expect(partHead.contains("Content-Transfer-Encoding: binary"), "\(partHead)")
            #expect(body == pages["/site/a.html"], "MHTML body: \(body.prefix(500))")

            let requests = server.requests.filter { $0.path == "/site/a.html" }
            #expect(requests.count == 1)
            let cookieHeader = requests.first?.headers["cookie"] ?? ""
            // Longer cookie paths first, then in configured order.
            #expect(cookieHeader == "pathok=v3; sess=v1; dotted=v2", "Cookie: \(cookieHeader)")
            for name in ["otherhost", "otherpath", "secureonly", "expired", "suffixonly"] {
                #expect(!cookieHeader.contains(name), "\(name) was sent: \(cookieHeader)")
            }
            #expect(requests.first?.headers["host"] == "127.0.0.1:\(server.port)")

            // The file browser's state is as before.
            agent.send(AgentMessage(type: .status, id: 2))
            #expect(try agent.reply(to: 2).homepage == url)
        }
    }

    @Test func errorStatusIsCapturedButFailuresAndOtherURLsAreNot() throws {
        try withAgent("file-failures") { agent, server in
            // HTTP 404 is still a page.
            try configure(agent, id: 1, server.url("/missing.html"))
            let missing = try agent.page(timeout: 20) { $0 == server.url("/missing.html") }
            #expect(try parseMHTML(missing.mhtml).body == "not found")
            #expect(missing.message.title == "")

            // A port nobody listens on (bound, then closed): connection refused, no page.
            let probe = try TestHTTPServer(pages: [:])
            let refusedURL = probe.url("/x.html")
            probe.stop()
            try configure(agent, id: 2, refusedURL)
            // Not loaded at all: names, https, other schemes.
            for (id, url) in [(3, "http://localhost:\(server.port)/b.html"), (4, "https://127.0.0.1:\(server.port)/b.html"),
                              (5, "about:blank"), (6, "http://127.0.0.01:\(server.port)/b.html")] as [(UInt64, String)] {
                try configure(agent, id: id, url)
            }
            try configure(agent, id: 7, server.url("/b.html"))
            let b = try agent.page(timeout: 20) { $0 == server.url("/b.html") }
            #expect(b.message.page! > missing.message.page!)
            #expect(b.message.title == "Page B")
            usleep(500_000)
            let stray = agent.pending { $0.type == .page }
            #expect(stray.isEmpty, "unexpected pages: \(stray.map { $0.url ?? "" })")
            #expect(server.requests.map(\.path) == ["/missing.html", "/b.html"])
            #expect(agent.log.contains("Connection refused"), "agent log: \(agent.log)")
            #expect(agent.log.contains("not an IPv4 address"))
            #expect(agent.log.contains("only http:// URLs"))
        }
    }

    @Test func bodyIsCutAt4MiB() throws {
        try withAgent("file-big") { agent, server in
            try configure(agent, id: 1, server.url("/big.html"))
            let page = try agent.page(timeout: 60) { $0 == server.url("/big.html") }
            let body = try parseMHTML(page.mhtml).body
            #expect(body.utf8.count == 4 << 20)
            #expect(pages["/big.html"]!.hasPrefix(body))
            #expect(page.message.title == "Big")
            #expect(agent.log.contains("body cut at 4194304 bytes"))
        }
    }

    @Test func hungLoadDoesNotDelayCaptureAfterResetAndIsNeverSent() throws {
        try withAgent("file-hung", held: ["/hang.html"]) { agent, server in
            try configure(agent, id: 1, server.url("/hang.html"))
            #expect(server.wait(timeout: 10) { server.requests.contains { $0.path == "/hang.html" } }, "the load never reached the server")
            try reset(agent, id: 2)

            let started = Date()
            try configure(agent, id: 3, server.url("/after.html"))
            let after = try agent.page(timeout: 20) { $0 == server.url("/after.html") }
            let elapsed = Date().timeIntervalSince(started)
            print("capture after reset: \(Int(elapsed * 1000)) ms while the first load still hangs")
            #expect(elapsed < 10, "capture took \(elapsed) s")
            #expect(after.message.title == "After reset")

            // The reset cancelled the hung load (its connection closed) rather than waiting 30 s.
            #expect(server.wait(timeout: 5) { server.heldClosedByClient == 1 }, "the hung load was not cancelled")
            // Even once the server answers, that page never comes.
            server.release()
            usleep(1_500_000)
            let stray = agent.pending { $0.type == .page || $0.type == .blob }
            #expect(stray.isEmpty, "sent after the reset: \(stray.map { "\($0.type.rawValue) \($0.url ?? "")" })")
        }
    }

    @Test func atMostFourLoadsAtOnceAndResetFreesThem() throws {
        try withAgent("file-limit", held: ["/hang.html"]) { agent, server in
            for id in UInt64(1)...5 { try configure(agent, id: id, server.url("/hang.html?\(id)")) }
            #expect(server.wait(timeout: 10) { server.requests.count == 4 }, "requests: \(server.requests.map(\.target))")
            usleep(1_000_000)
            #expect(server.requests.count == 4, "requests: \(server.requests.map(\.target))")
            #expect(agent.log.contains("4 page loads already in progress"))

            // The reset cancels the four; there is room again.
            try reset(agent, id: 6)
            #expect(server.wait(timeout: 5) { server.heldClosedByClient == 4 })
            try configure(agent, id: 7, server.url("/b.html"))
            let b = try agent.page(timeout: 20) { $0 == server.url("/b.html") }
            #expect(b.message.title == "Page B")
            server.release()
            usleep(1_000_000)
            #expect(agent.pending { $0.type == .page }.isEmpty)
        }
    }
}
