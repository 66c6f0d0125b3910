import ArgumentParser
import AudioRelay
import Hummingbird
import HummingbirdWebSocket
import Logging
import VMCloud
import VMCloudCore

/// `appliance audio-relay`: the audio relay alone, streaming named sinks of a PulseAudio daemon
/// with no tokens, for benchmarks (against `parec | opusenc` and ffmpeg) and for listening to a
/// sink by hand.
struct AudioRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audio-relay",
        abstract: "Stream PulseAudio sinks as the appliance does: GET /audio/SINK (Ogg/Opus) and /audio/SINK/ws (Opus packets).",
        discussion: "No access control: bind it to loopback. Sinks are null sinks created on first use (an existing sink of that name is used as it is). `appliance serve` has the relay built in, behind audio tokens.")

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen = "127.0.0.1:6081"

    @Option(help: "The PulseAudio daemon's native-protocol socket; a private daemon is started there if none answers.")
    var pulseSocket: String

    @Option(help: "Directory for a daemon started by the relay (config, state, log). (default: beside the socket)")
    var runtimeDirectory: String?

    @Option(help: "Log level.")
    var logLevel = "notice"

    func run() async throws {
        var settings = ServeConfig()
        do { try settings.setListen(listen) } catch let error as ServeConfig.Invalid { throw ValidationError(error.description) }
        var logger = Logger(label: "audio-relay")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .notice
        let relay = try AudioRelay(
            socketPath: pulseSocket, runtimeDirectory: runtimeDirectory ?? pulseSocket + ".d", logger: logger)
        try await relay.start()

        @Sendable func channel(_ parameters: Parameters) async throws -> AudioChannel {
            let sink = try parameters.require("sink")
            do {
                try await relay.ensureSink(sink)
            } catch let error as PulseError {
                throw APIError(status: .badRequest, code: "bad_sink", message: error.description)
            }
            return relay.channel(for: sink)!
        }
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        router.get("/audio/:sink") { _, context in
            try AudioStreaming.oggResponse(try await channel(context.parameters)) { ({ await waitForever() }, {}) }
        }
        let webSockets = Router(context: ViewerWebSocketContext.self)
        webSockets.ws("/audio/:sink/ws") { inbound, outbound, context in
            guard let channel = try? await channel(context.requestContext.parameters) else { return }
            try await AudioStreaming.webSocket(channel, inbound: inbound, outbound: outbound, until: { await waitForever() })
        }
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: webSockets, configuration: .init(ws: ViewerRoutes.webSocketConfiguration)),
            configuration: .init(address: .hostname(settings.listenHost, port: settings.listenPort), serverName: "vmcloud-audio-relay"),
            logger: logger)
        try await app.runService()
        await relay.shutdown()
    }
}

/// Returns only when the task is cancelled.
private func waitForever() async {
    while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
}
