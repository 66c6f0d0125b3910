// The guest agent against a real headless Chromium: configure, navigate, captures, status,
// reset, crash recovery and bad input, all through the host <-> guest protocol.
import AgentProtocol
import Foundation
import Glibc
import Testing

private let cookieValue = "v4lue42xq"
private let pages = [
    // Shows the cookie through JavaScript, so the MHTML proves the browser sent it to the page.
    "/a.html": """
        <html><head><title>Page A</title></head><body><p id="c">no script</p><a href="/b.html">next</a>
        <script>document.getElementById('c').textContent = 'cookies: ' + document.cookie;</script></body></html>
        """,
    "/b.html": "<html><head><title>Page B</title></head><body><p>second page text</p></body></html>",
]

/// One agent (and Chromium) per test, on its own DevTools port.
private func withAgent(_ name: String, port: UInt16, _ body: (AgentHarness, TestHTTPServer) throws -> Void) throws {
    let server = try TestHTTPServer(pages: pages)
    defer { server.stop() }
    let agent = try AgentHarness(devtoolsPort: port, name: name)
    defer { agent.stop() }
    _ = try agent.next("hello") { $0.type == .hello }
    try body(agent, server)
}

private func configure(_ agent: AgentHarness, _ server: TestHTTPServer, id: UInt64 = 1) throws -> AgentMessage {
    agent.send(AgentMessage(type: .configure, id: id, homepage: server.url("/a.html"),
                            cookies: [Cookie(name: "sess", value: cookieValue, domain: "127.0.0.1")]))
    return try agent.reply(to: id, timeout: 90)
}

private let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

@Suite(.serialized) struct ChromiumAgentTests {
    @Test func configureSetsCookieAndLoadsHomepage() throws {
        try withAgent("configure", port: 19311) { agent, server in
            let reply = try configure(agent, server)
            #expect(reply.type == .configured, "\(reply)")
            #expect(reply.homepage == server.url("/a.html"))
            let page = try agent.page { $0 == server.url("/a.html") }
            #expect(page.message.title == "Page A")
            #expect(page.screenshot.starts(with: pngMagic))
            #expect(page.mhtmlText.contains(cookieValue), "MHTML lacks the cookie: \(page.mhtmlText.prefix(2000))")
        }
    }

    @Test func navigateCapturesSecondPage() throws {
        try withAgent("navigate", port: 19312) { agent, server in
            #expect(try configure(agent, server).type == .configured)
            let first = try agent.page { $0 == server.url("/a.html") }
            agent.send(AgentMessage(type: .navigate, id: 2, url: server.url("/b.html")))
            #expect(try agent.reply(to: 2).type == .navigated)
            let page = try agent.page { $0 == server.url("/b.html") }
            #expect(page.message.page! > first.message.page!)
            #expect(page.message.title == "Page B")
            #expect(page.message.screenshotBytes == page.screenshot.count && page.message.mhtmlBytes == page.mhtml.count)
            #expect(page.screenshot.starts(with: pngMagic))
            #expect(page.mhtmlText.contains("second page text"))
        }
    }

    @Test func statusReportsHistoryAndCookiesAndResetClearsThem() throws {
        try withAgent("status", port: 19313) { agent, server in
            #expect(try configure(agent, server).type == .configured)
            agent.send(AgentMessage(type: .navigate, id: 2, url: server.url("/b.html")))
            #expect(try agent.reply(to: 2).type == .navigated)
            agent.send(AgentMessage(type: .status, id: 3))
            let state = try agent.reply(to: 3)
            #expect(state.type == .state)
            #expect(state.homepage == server.url("/b.html"))
            #expect(Array((state.history ?? []).suffix(2)) == [server.url("/a.html"), server.url("/b.html")])
            #expect(state.cookies?.contains { $0.name == "sess" && $0.value == cookieValue && $0.domain == "127.0.0.1" } == true)

            let started = Date()
            agent.send(AgentMessage(type: .reset, id: 4))
            #expect(try agent.reply(to: 4).type == .resetDone)
            print("reset took \(Int(Date().timeIntervalSince(started) * 1000)) ms")
            agent.send(AgentMessage(type: .status, id: 5))
            let after = try agent.reply(to: 5)
            #expect(after.type == .state)
            #expect((after.history ?? []).allSatisfy { $0 == "about:blank" }, "\(after.history ?? [])")
            #expect(after.cookies == [])
        }
    }

    @Test func killedChromiumIsReportedAndRestarted() throws {
        try withAgent("crash", port: 19314) { agent, server in
            #expect(try configure(agent, server).type == .configured)
            let chromium = agent.childPIDs()
            #expect(chromium.count == 1, "agent children: \(chromium)")
            for pid in chromium { kill(pid, SIGKILL) }
            let crash = try agent.next("browser_crashed") { $0.type == .browserCrashed }
            #expect(crash.message?.contains("signal 9") == true, "\(crash)")
            // Back at work: the new browser loads pages again (after reopening the homepage).
            agent.send(AgentMessage(type: .navigate, id: 2, url: server.url("/b.html")))
            #expect(try agent.reply(to: 2, timeout: 90).type == .navigated)
            _ = try agent.page { $0 == server.url("/b.html") }
            #expect(agent.childPIDs().count == 1)
        }
    }

    @Test func garbageGetsAnErrorWhileTheBrowserWorks() throws {
        try withAgent("garbage", port: 19315) { agent, server in
            agent.send(AgentMessage(type: .configure, id: 1, homepage: server.url("/a.html")))
            // Sent while the configure is in progress: answered without waiting for it.
            agent.sendRaw(Array("this is not json\n".utf8))
            agent.send(AgentMessage(type: .ping, id: 7))
            let error = try agent.next("error") { $0.type == .error }
            #expect(error.id == nil && error.message?.contains("malformed") == true)
            #expect(try agent.reply(to: 7).type == .pong)
            #expect(try agent.reply(to: 1, timeout: 90).type == .configured)
            agent.send(AgentMessage(type: .navigate, id: 2, url: "file:///etc/passwd"))
            #expect(try agent.reply(to: 2).type == .error)
        }
    }
}
