import ArgumentParser
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import VMCloud
import VMCloudCore
import VNCBridge

/// `appliance vnc-proxy`: the bridge's relay alone, from WebSocket to one VNC unix socket with no
/// tokens, for benchmarks (against websockify) and for reaching a VM's screen by hand.
struct VNCProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnc-proxy",
        abstract: "Relay WebSocket connections (any path) to a VNC unix socket, as the appliance's bridge does.",
        discussion: "No access control: bind it to loopback. `appliance serve` has the bridge built in, behind viewer tokens.")

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen = "127.0.0.1:6080"

    @Option(help: "The VNC server's unix socket.")
    var unixTarget: String

    @Flag(help: "Drop key, pointer and clipboard input, as a view-only session does.")
    var viewOnly = false

    @Option(help: "Log level.")
    var logLevel = "notice"

    func run() async throws {
        var settings = ServeConfig()
        do { try settings.setListen(listen) } catch let error as ServeConfig.Invalid { throw ValidationError(error.description) }
        var logger = Logger(label: "vnc-proxy")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .notice
        let (target, mode) = (unixTarget, viewOnly ? RFBClientStreamFilter.Mode.view : .control)
        let sessions = BridgeSessions<Int>()
        let webSockets = Router(context: ViewerWebSocketContext.self)
        // "**" matches one or more path components, so "/" is routed on its own.
        for path: RouterPath in ["/", "**"] {
            webSockets.ws(path) { inbound, outbound, context in
                let session = sessions.open(0)
                defer { sessions.close(session) }
                let relay = RFBRelay(socketPath: target, mode: mode, logger: context.logger)
                do {
                    _ = try await relay.run(inbound: inbound, outbound: outbound, session: session, eventLoop: context.requestContext.eventLoop)
                } catch {
                    context.logger.warning("cannot reach \(target): \(error)")
                }
            }
        }
        let app = Application(
            router: Router(),
            server: .http1WebSocketUpgrade(webSocketRouter: webSockets, configuration: .init(ws: ViewerRoutes.webSocketConfiguration)),
            configuration: .init(address: .hostname(settings.listenHost, port: settings.listenPort), serverName: "vmcloud-vnc-proxy"),
            logger: logger)
        try await app.runService()
    }
}
