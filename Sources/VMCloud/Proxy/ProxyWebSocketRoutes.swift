import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import VMCloudCore
import WSClient

/// WebSocket upgrades on `/r/{id}/...` and `/smart_proxy/{id}/{groups}/...` (the server's
/// WebSocket router, apart from the HTTP one). Before the upgrade: the caller's key (the HTTP
/// routes' `ProxyRoutes.access`: bearer, signed or `?key=`), the groups rule and the wake-up of
/// the resource's VM; a refusal there is not upgraded and the HTTP route answers it
/// (401/403/404/502/504).
/// After: a WebSocket client to the same path on the guest, and every frame relayed as it
/// comes both ways until one side closes; the connection counts as activity while it is open.
struct ProxyWebSocketRoutes {
    let proxy: SmartProxy
    let authenticator: Authenticator

    func register(on router: Router<ViewerWebSocketContext>) {
        for (path, smart) in [("r/:resource/**", false), ("smart_proxy/:resource/:groups/**", true)] {
            router.ws(RouterPath(path)) { request, _ in
                let (resource, _) = try await admit(request, smart: smart)
                _ = try await proxy.waker.upstream(for: resource)
                // The guest picks from what the caller offered once the relay connects; the
                // caller is answered with its first offer.
                let offered = Self.offeredProtocols(request.headers)
                return .upgrade(offered.first.map { [.secWebSocketProtocol: $0] } ?? [:])
            } onUpgrade: { inbound, outbound, context in
                let request = context.request
                guard let (resource, target) = try? await admit(request, smart: smart) else {
                    try await outbound.close(.policyViolation, reason: "access ended")
                    return
                }
                let waker = proxy.waker
                await waker.begin(resource.id)
                let activity = ActivityToken(waker: waker, resource: resource.id)
                defer { activity.end() }
                let logger = context.logger.with(metadata: ["resource": "\(resource.id)"])
                do {
                    let upstream = try await waker.upstream(for: resource)
                    try await Self.relay(inbound: inbound, outbound: outbound, to: upstream, pathAndQuery: target.pathAndQuery,
                                         prefix: target.prefix, headers: request.headers, logger: logger)
                } catch {
                    logger.info("proxied WebSocket ended", metadata: ["error": "\(error)"])
                    try? await outbound.close(.unexpectedServerError, reason: "the resource's service is not reachable")
                }
            }
        }
    }

    /// The caller, the resource and the groups rule, as on the HTTP routes.
    private func admit(_ request: Request, smart: Bool) async throws -> (ResourceRecord, ProxyTarget) {
        var request = request
        guard let client = try await authenticator.admit(&request, remoteAddress: nil, access: ProxyRoutes.access) else {
            throw Authenticator.unauthorized(.missing)  // not reached: the access is not open
        }
        let target = try ProxyTarget.parse(path: request.uri.path, query: request.uri.query, smart: smart)
        guard let resource = try await proxy.store.resource(target.resource) else {
            throw APIError.notFound("no resource '\(target.resource)'")
        }
        try ProxyAccess.check(client: client, claimed: target.claimed, required: resource.requiredGroups, resource: resource.id)
        return (resource, target)
    }

    static func offeredProtocols(_ headers: HTTPFields) -> [String] {
        headers[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Headers for the guest's handshake: the caller's, less hop-by-hop ones, credentials and the
    /// caller's own handshake fields (the client library makes its own).
    static func upstreamHeaders(_ headers: HTTPFields, prefix: String) -> HTTPFields {
        let handshake: Set<String> = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept", "host"]
        var fields = HTTPFields()
        let named = Set(headers[values: .connection].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        for field in headers {
            let name = field.name.canonicalName
            if UpstreamForwarder.hopByHop.contains(name) || named.contains(name) || UpstreamForwarder.dropped.contains(name) || handshake.contains(name) { continue }
            if name == "x-forwarded-for" { continue }
            fields.append(field)
        }
        fields.append(HTTPFields.Element(name: .init("X-Forwarded-Proto")!, value: "http"))
        fields.append(HTTPFields.Element(name: .init("X-Forwarded-Prefix")!, value: prefix))
        return fields
    }

    /// `pathAndQuery`: the path after the proxy's `prefix` and the query without `key`.
    static func relay(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, to upstream: Upstream, pathAndQuery: String,
                      prefix: String, headers: HTTPFields, logger: Logger) async throws {
        let url = "ws://\(upstream.host):\(upstream.port)\(pathAndQuery)"
        let configuration = WebSocketClientConfiguration(
            maxFrameSize: ViewerRoutes.webSocketConfiguration.maxFrameSize,
            additionalHeaders: upstreamHeaders(headers, prefix: prefix))
        try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { guestInbound, guestOutbound, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await frame in inbound { try await guestOutbound.write(.custom(Self.frame(frame))) }
                    try? await guestOutbound.close(.normalClosure, reason: nil)
                }
                group.addTask {
                    for try await frame in guestInbound { try await outbound.write(.custom(Self.frame(frame))) }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// A data frame as it came (text, binary or a continuation of either), for the other side.
    static func frame(_ frame: WebSocketDataFrame) -> WebSocketFrame {
        let opcode: WebSocketOpcode = switch frame.opcode {
        case .text: .text
        case .binary: .binary
        case .continuation: .continuation
        }
        return WebSocketFrame(fin: frame.fin, opcode: opcode, data: frame.data)
    }
}
