import Foundation
import Hummingbird
import HummingbirdWebSocket
import VMCloudCore

/// WebSocket upgrades on `/viewers/{project}/{kind}/...`: the same key check as the HTTP routes
/// before the upgrade (a refusal is not upgraded, and the HTTP route answers why) and again
/// after it; then every frame relayed to the same path on the viewer's port, as the resource
/// proxy relays them.
struct ViewerProxyWebSocketRoutes {
    let proxy: SmartProxy

    func register(on router: Router<ViewerWebSocketContext>) {
        router.ws("viewers/:project/:kind/**") { request, _ in
            let (_, machine, _) = try await ViewerProxyTarget.admit(request, store: proxy.store)
            _ = try ViewerProxyTarget.upstream(machine)
            let offered = ProxyWebSocketRoutes.offeredProtocols(request.headers)
            return .upgrade(offered.first.map { [.secWebSocketProtocol: $0] } ?? [:])
        } onUpgrade: { inbound, outbound, context in
            let request = context.request
            guard let (target, machine, _) = try? await ViewerProxyTarget.admit(request, store: proxy.store),
                  let upstream = try? ViewerProxyTarget.upstream(machine) else {
                try await outbound.close(.policyViolation, reason: "access ended")
                return
            }
            let logger = context.logger.with(metadata: ["viewer": "\(target.project)/\(target.kind)"])
            do {
                try await ProxyWebSocketRoutes.relay(
                    inbound: inbound, outbound: outbound, to: upstream, pathAndQuery: target.pathAndQuery, prefix: target.prefix,
                    headers: ViewerProxyAccess.forwardedHeaders(request.headers), logger: logger)
            } catch {
                logger.info("proxied viewer WebSocket ended", metadata: ["error": "\(error)"])
                try? await outbound.close(.unexpectedServerError, reason: "the viewer's service is not reachable")
            }
        }
    }
}
