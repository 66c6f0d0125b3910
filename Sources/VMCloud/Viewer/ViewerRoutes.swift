import Foundation
import Hummingbird
import Logging
import HummingbirdWebSocket
import NIOCore
import VMCloudCore
import VNCBridge

/// The worker's way to a VM's screen: the viewer page, noVNC's files (from Debian's `novnc`
/// package, not copied into this repository) and the WebSocket that carries RFB to the VM.
/// Open to callers without a client key: the viewer token in the query is the credential.
///
/// The WebSocket upgrade is decided by `webSocketRouter`, which checks the token before
/// anything connects to the VM; a refused (or plain HTTP) request falls through to the main
/// router's route of the same path, which answers why.
package struct ViewerRoutes {
    let access: ViewerAccess
    /// Where Debian's novnc package puts noVNC.
    var noVNCDirectory = "/usr/share/novnc"

    func register(on router: APIRouter) {
        // noVNC's files: routes of their own, so that they are declared open and FileMiddleware
        // wraps nothing else; it serves the file behind their 404.
        let noVNC = router.group("novnc").adding(middleware: FileMiddleware(noVNCDirectory, urlBasePath: "/novnc"))
        for path: RouterPath in ["", "**"] {
            noVNC.get(path, access: .open) { _, _ -> Response in throw HTTPError(.notFound) }
            noVNC.head(path, access: .open) { _, _ -> Response in throw HTTPError(.notFound) }
        }
        router.get("/viewer/:id", access: .open) { _, context in
            _ = try InputValidation.id(context.parameters.require("id"), "id")
            return try InstalledFiles.htmlPage("static/viewer.html")
        }
        // What a token grants, for the viewer page (view-only UI, whether to reconnect).
        router.get("/v1/vms/:id/vnc/access", access: .open) { request, context in
            let grant = try await grant(request, context.parameters)
            return JSONBody.response(AccessView(vm: grant.vmId, handle: grant.handleId, scope: grant.scope.rawValue))
        }
        // Reached when the WebSocket router did not upgrade: a bad token, or not a WebSocket.
        router.get("/v1/vms/:id/vnc", access: .open) { request, context -> Response in
            _ = try await grant(request, context.parameters)
            throw APIError(status: .upgradeRequired, code: "upgrade_required",
                           message: "this endpoint speaks RFB over WebSocket (binary frames); open it with noVNC")
        }
    }

    /// Frames up to 1 MiB and a bit: a clipboard paste (ClientCutText, capped at 1 MiB by the
    /// filter) arrives in one frame. Pings keep idle viewers' NAT mappings alive; a client that
    /// ignores the close handshake is cut off after a second.
    package static let webSocketConfiguration = WebSocketServerConfiguration(
        maxFrameSize: (1 << 20) + 64, autoPing: .enabled(timePeriod: .seconds(30)), closeTimeout: .seconds(1))

    /// Adds the VNC WebSocket to the router the HTTP server consults for upgrade requests.
    func registerWebSocket(on router: Router<ViewerWebSocketContext>) {
        router.ws("/v1/vms/:id/vnc") { request, context in
            _ = try await grant(request, context.parameters)
            // noVNC may offer the `binary` subprotocol; a browser drops a connection whose
            // answer omits a protocol it offered.
            let offered = request.headers[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }
            if offered.contains(where: { $0.trimmingCharacters(in: .whitespaces) == "binary" }) {
                return .upgrade([.secWebSocketProtocol: "binary"])
            }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let request = context.request
            // Checked again: access may have ended between the upgrade and now.
            guard let grant = try? await grant(request, context.requestContext.parameters) else {
                try await outbound.close(.unknown(VNCBridge.revokedCloseCode), reason: "access revoked")
                return
            }
            let session = access.sessions.open(grant)
            defer { access.sessions.close(session) }
            let logger = context.logger.with(metadata: ["vm": "\(grant.vmId)", "handle": "\(grant.handleId)", "scope": "\(grant.scope.rawValue)"])
            logger.info("viewer connected")
            let relay = RFBRelay(socketPath: access.vncSocket(grant.vmId), mode: grant.scope == .view ? .view : .control, logger: logger)
            do {
                let end = try await relay.run(inbound: inbound, outbound: outbound, session: session, eventLoop: context.requestContext.eventLoop)
                logger.info("viewer disconnected", metadata: ["end": "\(end)"])
            } catch {
                logger.warning("viewer could not reach the VM's screen", metadata: ["error": "\(error)"])
                try? await outbound.close(.unexpectedServerError, reason: "the VM's screen is not reachable")
            }
        }
    }

    /// The grant of the request's `?token=` on the VM of its path, or the error refusing it.
    private func grant(_ request: Request, _ parameters: Parameters) async throws -> ViewerAccess.Grant {
        let vm = try InputValidation.id(parameters.require("id"), "id")
        return try await access.grant(token: request.uri.queryParameters["token"].map(String.init), vm: vm)
    }

    struct AccessView: Encodable {
        let vm: Int64
        let handle: Int64
        let scope: String
    }
}

/// Request context of the WebSocket router: remembers the connection's event loop so that the
/// relay's VNC socket lives on the same thread as the browser's.
package struct ViewerWebSocketContext: RequestContext, WebSocketRequestContext {
    package var coreContext: CoreRequestContextStorage
    package let webSocket: WebSocketHandlerReference<Self>
    package let eventLoop: any EventLoop

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        eventLoop = source.channel.eventLoop
    }
}

extension Logger {
    func with(metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (key, value) in metadata { copy[metadataKey: key] = value }
        return copy
    }
}
