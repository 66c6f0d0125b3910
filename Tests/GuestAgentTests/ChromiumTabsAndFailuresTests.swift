// The agent and a real headless Chromium when sites fail and when pages open tabs: a homepage
// that cannot load is an outcome the host is told (the browser shows the error, the configure
// succeeds), and a page in a new tab is captured with its tab's number.
import AgentProtocol
import Foundation
import Glibc
import Testing

private let pages = [
    "/home.html": "<html><head><title>Home</title></head><body><p>home page text</p></body></html>",
    // Opens a second tab as the page loads (the test's Chromium allows popups without a click).
    "/opener.html": """
        <html><head><title>Opener</title></head><body><p>opener</p>
        <script>window.open('/opened.html', '_blank');</script></body></html>
        """,
    "/opened.html": "<html><head><title>Opened</title></head><body><p>opened in a new tab</p></body></html>",
]

private func withAgent(_ name: String, port: UInt16, flags: String = "", held: Set<String> = [],
                       _ body: (AgentHarness, TestHTTPServer) throws -> Void) throws {
    let server = try TestHTTPServer(pages: pages, held: held)
    defer { server.stop() }
    let agent = try AgentHarness(devtoolsPort: port, name: name, chromiumFlags: flags)
    defer { agent.stop() }
    _ = try agent.next("hello") { $0.type == .hello }
    try body(agent, server)
}

/// A port on 127.0.0.1 that refuses connections (bound, never listening).
private func refusingPort() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw TestFailure("cannot bind a port") }
    return (fd, UInt16(bigEndian: addr.sin_port))
}

@Suite(.serialized) struct ChromiumTabsAndFailuresTests {
    @Test func aHomepageThatFailsIsAnOutcomeNotAnError() throws {
        let refusing = try refusingPort()
        defer { close(refusing.fd) }
        try withAgent("failing-sites", port: 19316, held: ["/hang.html"]) { agent, server in
            let cases: [(String, String)] = [
                ("http://no-such-host.invalid/", "ERR_NAME_NOT_RESOLVED"),
                ("http://127.0.0.1:\(refusing.port)/", "ERR_CONNECTION_REFUSED"),
                (server.url("/missing.html"), "HTTP 404"),
                (server.url("/hang.html"), "timeout"),
            ]
            for (index, (url, expected)) in cases.enumerated() {
                let id = UInt64(index + 1)
                agent.send(AgentMessage(type: .configure, id: id, homepage: url))
                let reply = try agent.reply(to: id, timeout: 90)
                #expect(reply.type == .configured, "\(url): \(reply)")
                #expect(reply.loadError?.contains(expected) == true, "\(url): loadError \(reply.loadError ?? "nil"), expected \(expected)")
            }
            // Still a working browser: a page that loads reports no error and is captured.
            agent.send(AgentMessage(type: .configure, id: 9, homepage: server.url("/home.html")))
            let fine = try agent.reply(to: 9, timeout: 90)
            #expect(fine.type == .configured && fine.loadError == nil, "\(fine)")
            let page = try agent.page { $0 == server.url("/home.html") }
            #expect(page.message.tab == 1)
            // The error page was captured under the URL that failed, not chrome-error://.
            #expect(agent.pending { $0.type == .page && ($0.url ?? "").hasPrefix("chrome-error:") }.isEmpty)
        }
    }

    @Test func aPageInANewTabIsCapturedWithItsTab() throws {
        try withAgent("tabs", port: 19317, flags: "--disable-popup-blocking") { agent, server in
            agent.send(AgentMessage(type: .configure, id: 1, homepage: server.url("/opener.html")))
            #expect(try agent.reply(to: 1, timeout: 90).type == .configured)
            let opener = try agent.page { $0 == server.url("/opener.html") }
            let opened = try agent.page(timeout: 90) { $0 == server.url("/opened.html") }
            #expect(opener.message.tab == 1, "\(opener.message)")
            #expect(opened.message.tab == 2, "\(opened.message)")
            #expect(opened.message.title == "Opened")
            #expect(opened.mhtmlText.contains("opened in a new tab"))
            // The host's navigations still go to the first tab; a reset closes the second.
            agent.send(AgentMessage(type: .navigate, id: 2, url: server.url("/home.html")))
            #expect(try agent.reply(to: 2, timeout: 90).type == .navigated)
            #expect(try agent.page { $0 == server.url("/home.html") }.message.tab == 1)
            agent.send(AgentMessage(type: .reset, id: 3))
            #expect(try agent.reply(to: 3, timeout: 90).type == .resetDone)
            agent.send(AgentMessage(type: .configure, id: 4, homepage: server.url("/home.html")))
            #expect(try agent.reply(to: 4, timeout: 90).type == .configured)
            // Numbering starts again with the new session: the second tab went with the reset.
            #expect(try agent.page { $0 == server.url("/home.html") }.message.tab == 1)
        }
    }
}
