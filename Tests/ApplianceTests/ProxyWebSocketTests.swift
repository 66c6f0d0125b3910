import AudioTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWebSocket
import Logging
import NIOCore
import Testing
import Synchronization
import WSClient
@testable import VMCloud
@testable import VMCloudCore

/// WebSocket forwarding through the proxy's paths, against a WebSocket echo service on
/// loopback standing in for a resource's guest (the test image's httpd speaks no WebSocket).
@Suite struct ProxyWebSocketTests {
    /// WebSocket connections the guest has accepted.
    static let guestConnections = Mutex(0)

    /// The guest: tells what it received (path, credentials, forwarded headers), then echoes.
    static func echoService() -> some ApplicationProtocol {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("/echo") { _, _ in .upgrade([:]) } onUpgrade: { inbound, outbound, context in
            guestConnections.withLock { $0 += 1 }
            let request = context.request
            let seen = "path=\(request.uri.string) auth=\(request.headers[.authorization] ?? "none") prefix=\(request.headers[.init("X-Forwarded-Prefix")!] ?? "-")"
            try await outbound.write(.text(seen))
            for try await message in inbound.messages(maxSize: 1 << 20) {
                switch message {
                case .text(let text): try await outbound.write(.text("echo:" + text))
                case .binary(let data): try await outbound.write(.binary(data))
                }
            }
        }
        return Application(router: Router(), server: .http1WebSocketUpgrade(webSocketRouter: router),
                           configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    @Test func framesGoBothWaysAndRefusalsAreNotUpgraded() async throws {
        let harness = try await APIHarness()
        defer { try? FileManager.default.removeItem(atPath: harness.directory) }
        try FileManager.default.createDirectory(atPath: harness.machines.images.root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.machines.images.root + "/disk.qcow2", contents: Data())
        let store = harness.pool.store
        let resource = try JSONDecoder().decode(ResourceRequest.self, from: Data(#"{"id":"ws","port":1,"groups":"g1","image":"disk.qcow2"}"#.utf8))
            .validated(host: .init(kvmUsable: false, images: harness.machines.images))
        try await store.createResource(resource)
        let member = try await store.createClient(email: "m@example.test", role: .application, groups: ["g1"]).1.text
        let outsider = try await store.createClient(email: "o@example.test", role: .application, groups: ["g2"]).1.text

        let proxy = SmartProxy(machines: harness.machines, logger: Logger(label: "test"))
        let http = Router(context: AppRequestContext.self)
        http.add(middleware: JSONErrorMiddleware())
        proxy.register(on: APIRouter(http, authenticator: harness.authenticator))
        let webSockets = Router(context: ViewerWebSocketContext.self)
        proxy.registerWebSocket(on: webSockets, authenticator: harness.authenticator)
        let app = Application(router: http, server: .http1WebSocketUpgrade(webSocketRouter: webSockets, configuration: .init(ws: ViewerRoutes.webSocketConfiguration)),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)))

        try await Self.echoService().test(.live) { guest in
            await proxy.waker.prime("ws", Upstream(host: "127.0.0.1", port: guest.port!, machineId: 0))
            try await app.test(.live) { client in
                let base = "ws://127.0.0.1:\(client.port!)"
                let lines = try await Self.exchange(base + "/r/ws/echo?x=1&key=\(member)", headers: [:], send: ["hello", "second"])
                #expect(lines.first == "path=/echo?x=1 auth=none prefix=/r/ws", "the key and the credentials stay here: \(lines)")
                #expect(Array(lines.dropFirst()) == ["echo:hello", "echo:second"])
                let smart = try await Self.exchange(base + "/smart_proxy/ws/g1/echo", headers: [.authorization: "Bearer \(member)"], send: ["x"])
                #expect(smart == ["path=/echo auth=none prefix=/smart_proxy/ws/g1", "echo:x"])

                // Refused before the upgrade: no key, an outsider's key, a group the caller does
                // not hold. hummingbird-websocket answers every refused upgrade with an empty 400
                // (HTTP1WebSocketUpgradeChannel.writeFailedUpgrade), whatever the route threw, so
                // the status cannot say 401/403/404; what matters is 400 instead of 101 and that
                // the guest never sees the connection.
                let guestConnectionsBefore = Self.guestConnections.withLock { $0 }
                for (uri, headers) in [("/r/ws/echo", HTTPFields()), ("/r/ws/echo?key=\(outsider)", HTTPFields()),
                                       ("/smart_proxy/ws/g2/echo", [.authorization: "Bearer \(member)"] as HTTPFields)] {
                    let extra = headers.map { "\($0.name.rawName): \($0.value)\r\n" }.joined()
                    let status = try Self.rawUpgradeStatus(port: client.port!, request:
                        "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
                        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\(extra)\r\n")
                    #expect(status == 400, "\(uri): \(status)")
                }
                #expect(Self.guestConnections.withLock { $0 } == guestConnectionsBefore, "no refused caller reached the guest")
                #expect(await proxy.waker.activity("ws").open == 0, "the connections' activity ended with them")
            }
        }
    }

    /// Sends one raw HTTP request on a new connection and returns the status code of the answer
    /// (the test client gives up on a connection the server closes right after a refusal).
    static func rawUpgradeStatus(port: Int, request: String) throws -> Int {
        let (fd, connected) = withLoopbackSocket(port: port) { fd, address, length in
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            return connect(fd, address, length)
        }
        defer { close(fd) }
        guard connected == 0 else { throw TestFailure(description: "connect: errno \(errno)") }
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = recv(fd, &buffer, buffer.count, 0)
        let head = String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self)
        // "HTTP/1.1 400 Bad Request"
        guard let code = head.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw TestFailure(description: "no HTTP status in \(head.debugDescription)")
        }
        return code
    }

    /// Connects, sends `send`, and collects the text messages until the guest's hello and one
    /// answer per message have come.
    static func exchange(_ url: String, headers: HTTPFields, send: [String]) async throws -> [String] {
        let received = Mutex<[String]>([])
        try await WebSocketClient.connect(url: url, configuration: .init(additionalHeaders: headers), logger: Logger(label: "ws-test")) { inbound, outbound, _ in
            for text in send { try await outbound.write(.text(text)) }
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message else { continue }
                let count = received.withLock { $0.append(text); return $0.count }
                if count == send.count + 1 { break }
            }
            try await outbound.close(.normalClosure, reason: nil)
        }
        return received.withLock { $0 }
    }
}
