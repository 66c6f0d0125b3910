import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization
import Testing
import WSClient
@testable import VMCloud
@testable import VMCloudCore

/// What a keyed viewer's guest gets through `/viewers/{project}/{kind}/...`, HTTP and WebSocket:
/// against a service on loopback that tells every header it received (the test image's httpd
/// shows no headers and speaks no WebSocket), standing in for the viewer's guest port.
@Suite struct ViewerProxyForwardTests {
    /// WebSocket connections the guest has accepted.
    static let guestConnections = Mutex(0)

    static func seen(_ request: Request) -> String {
        (["\(request.method.rawValue) \(request.uri.string)"] + request.headers.map { "\($0.name.canonicalName): \($0.value)" })
            .joined(separator: "\n")
    }

    /// The guest: every HTTP request answered with what it saw, and two Set-Cookies (one trying
    /// to replace the appliance's cookie); `/ws` tells what it saw, then echoes.
    static func guest() -> some ApplicationProtocol {
        let http = Router()
        http.on("**", method: .get) { request, _ in
            Response(status: .ok, headers: [.setCookie: "\(ViewerProxyAccess.cookieName)=guest; Path=/", .setCookie: "app=2; Path=/"],
                     body: .init(byteBuffer: ByteBuffer(string: seen(request))))
        }
        let webSockets = Router(context: BasicWebSocketRequestContext.self)
        webSockets.ws("/ws") { _, _ in .upgrade([:]) } onUpgrade: { inbound, outbound, context in
            guestConnections.withLock { $0 += 1 }
            try await outbound.write(.text(seen(context.request)))
            for try await message in inbound.messages(maxSize: 1 << 20) {
                if case .text(let text) = message { try await outbound.write(.text("echo:" + text)) }
            }
        }
        return Application(router: http, server: .http1WebSocketUpgrade(webSocketRouter: webSockets),
                           configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// A viewer whose service is `port` on loopback, as if its guest had reported that IP.
    static func viewer(_ harness: APIHarness, project: String, port: Int) async throws -> String {
        let key = ViewerLaunchRoutes.newAccessKey()
        var spec = MachineSpec.plain(hda: .stored("disk.qcow2"))
        spec.viewerPort = port
        let made = spec
        let (machine, _) = try await harness.pool.store.ensureMachine(ownerKey: ViewerLaunchRoutes.ownerKey(project, "web")) {
            ("viewer.\(project).web", made, key)
        }
        try await harness.pool.store.pool.write { db in
            try db.execute(sql: "UPDATE machine SET ip = '127.0.0.1' WHERE id = ?", arguments: [machine.id])
        }
        return key
    }

    @Test func theGuestGetsNeitherTheKeyNorTheCallersCredentials() async throws {
        let harness = try await APIHarness()
        do {
            try await Self.check(harness)
        } catch {
            await harness.close()
            throw error
        }
        await harness.close()
    }

    static func check(_ harness: APIHarness) async throws {
        let webSockets = Router(context: ViewerWebSocketContext.self)
        harness.parts.proxy.registerWebSocket(on: webSockets, authenticator: harness.authenticator)
        let app = Application(router: harness.parts.router(), server: .http1WebSocketUpgrade(webSocketRouter: webSockets, configuration: .init(ws: ViewerRoutes.webSocketConfiguration)),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)))

        try await Self.guest().test(.live) { guest in
            let key = try await Self.viewer(harness, project: "p1", port: guest.port!)
            let otherKey = try await Self.viewer(harness, project: "p2", port: guest.port!)
            try await app.test(.live) { client in
                // Opened with ?key=: a cookie for this viewer's path, and the page without the key.
                let opened = try await client.execute(uri: "/viewers/p1/web/page?a=1&key=\(key)", method: .get)
                #expect(opened.status == .seeOther && opened.headers[.location] == "/viewers/p1/web/page?a=1")
                let setCookie = try #require(opened.headers[.setCookie])
                #expect(setCookie.hasPrefix("\(ViewerProxyAccess.cookieName)=") && setCookie.contains("; Path=/viewers/p1/web/; HttpOnly"), "\(setCookie)")
                let cookie = String(setCookie.split(separator: ";")[0])

                // A request with every credential: the page's own cookie and headers reach the
                // guest; the appliance's cookie, the key (header, query, Referer) and the
                // caller's credentials do not.
                let headers: HTTPFields = [
                    .cookie: "\(cookie); app=1", .authorization: "Bearer \(harness.adminKey)", .init("X-Vmcloud-Signature")!: "sig",
                    ViewerProxyAccess.keyHeader: key, .referer: "http://appliance.test/viewers/p1/web/?key=\(key)&b=2", .accept: "text/html",
                ]
                let answer = try await client.execute(uri: "/viewers/p1/web/page?a=1&key=\(key)", method: .get, headers: headers)
                let seen = String(buffer: answer.body)
                #expect(answer.status == .ok && seen.hasPrefix("GET /page?a=1\n"), "\(seen)")
                #expect(seen.contains("cookie: app=1\n") && seen.contains("referer: http://appliance.test/viewers/p1/web/?b=2\n"), "\(seen)")
                #expect(seen.contains("accept: text/html") && seen.contains("x-forwarded-prefix: /viewers/p1/web"), "\(seen)")
                for secret in [key, harness.adminKey, String(cookie.split(separator: "=")[1]), "sig"] {
                    #expect(!seen.contains(secret), "the guest saw \(secret.prefix(8))…: \(seen)")
                }
                #expect(!seen.lowercased().contains("authorization") && !seen.lowercased().contains("x-viewer-key"), "\(seen)")
                #expect(answer.headers[values: .setCookie] == ["app=2; Path=/"], "the guest cannot replace the appliance's cookie")

                // The cookie opens its own viewer only.
                #expect(try await client.execute(uri: "/viewers/p2/web/page", method: .get, headers: [.cookie: cookie]).status == .unauthorized)
                #expect(try await client.execute(uri: "/viewers/p1/web/page", method: .get, headers: [.cookie: "\(ViewerProxyAccess.cookieName)=\(key)"]).status == .unauthorized,
                        "the key itself is not the cookie's value")

                // WebSocket: the same credentials, the same stripping, frames both ways.
                let base = "ws://127.0.0.1:\(client.port!)"
                let lines = try await ProxyWebSocketTests.exchange(base + "/viewers/p1/web/ws?x=1&key=\(key)",
                                                                   headers: [.authorization: "Bearer \(harness.adminKey)", .cookie: "\(cookie); app=1"], send: ["hello"])
                let wsSeen = lines.first ?? ""
                #expect(wsSeen.hasPrefix("GET /ws?x=1\n") && wsSeen.contains("cookie: app=1") && lines.dropFirst() == ["echo:hello"], "\(lines)")
                #expect(!wsSeen.contains(key) && !wsSeen.contains(harness.adminKey) && !wsSeen.lowercased().contains("authorization"), "\(wsSeen)")
                let byCookie = try await ProxyWebSocketTests.exchange(base + "/viewers/p1/web/ws", headers: [.cookie: cookie], send: ["x"])
                #expect(byCookie.dropFirst() == ["echo:x"])

                // Refused before the upgrade (400, the guest never sees them): no key, the other
                // viewer's key, this viewer's cookie on the other's path.
                let before = Self.guestConnections.withLock { $0 }
                for (uri, extra) in [("/viewers/p1/web/ws", ""), ("/viewers/p1/web/ws?key=\(otherKey)", ""),
                                     ("/viewers/p2/web/ws", "Cookie: \(cookie)\r\n")] {
                    let status = try ProxyWebSocketTests.rawUpgradeStatus(port: client.port!, request:
                        "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
                        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\(extra)\r\n")
                    #expect(status == 400, "\(uri): \(status)")
                }
                #expect(Self.guestConnections.withLock { $0 } == before, "no refused caller reached the guest")
            }
        }
    }

    @Test func keysAndCookiesAreComparedWhole() {
        let key = ViewerLaunchRoutes.newAccessKey()
        #expect(ViewerProxyAccess.matches(key, key))
        #expect(!ViewerProxyAccess.matches(String(key.dropLast()), key) && !ViewerProxyAccess.matches(key + "0", key) && !ViewerProxyAccess.matches("", key))
        #expect(ViewerProxyAccess.queryKeys("a=1&%6Bey=x%2By&key") == ["x+y", ""])
        #expect(ViewerProxyAccess.withoutKey(url: "http://h/p?key=1&b=2#f") == "http://h/p?b=2#f")
        #expect(ViewerProxyAccess.withoutKey(url: "http://h/p?key=1") == "http://h/p")
    }
}
