import Hummingbird
import HummingbirdWebSocket
import Logging
import ServiceLifecycle
import VMCloudCore

/// The application `appliance serve` runs: the parts wired from `config`, their routes, and the
/// long-running parts as services.
package func buildApplication(_ config: ServeConfig, logger: Logger) async throws -> some ApplicationProtocol {
    try await ApplianceParts.wire(config, logger: logger).application()
}

extension ApplianceParts {
    /// Serves the HTTP and WebSocket routes on the configured address, with the services.
    func application() -> some ApplicationProtocol {
        let webSockets = Router(context: ViewerWebSocketContext.self)
        ViewerRoutes(access: viewer).registerWebSocket(on: webSockets)
        audioRoutes.registerWebSocket(on: webSockets)
        proxy.registerWebSocket(on: webSockets, authenticator: authenticator)
        let runningLogger = logger
        return Application(
            router: router(),
            server: .http1WebSocketUpgrade(
                webSocketRouter: webSockets,
                configuration: .init(ws: ViewerRoutes.webSocketConfiguration)),
            configuration: .init(address: .hostname(config.listenHost, port: config.listenPort), serverName: "vmcloud-appliance"),
            services: makeServices(),
            onServerRunning: { channel in
                runningLogger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
    }

    /// The long-running parts, made once, by `application()`: each call subscribes the engine to
    /// the watch again, and a subscription nobody reads would buffer forever. Each is restarted when it
    /// throws: an outside fault must not end the service group. The group stops services in
    /// reverse order, so the first one, which closes libvirt, the agent sessions and the audio
    /// daemon, stops after all that use them.
    func makeServices() -> [any Service] {
        [ClosingService(libvirt: libvirt, agents: agents, audio: audio)]
            + ([DomainWatchService(watch: watch),
                VMEngineService(engine: engine, news: watch.subscribe()),
                ViewerAccessService(access: viewer, logger: logger),
                RequestCounterService(counter: requestCounter, store: store, logger: logger)] + proxy.services)
            .map { $0.restarting(as: "\(type(of: $0))", logger: logger) }
    }

    /// Every route of the API.
    func router() -> Router<AppRequestContext> { routes().router }

    /// Every route of the API, each registered with the access it declares (see RouteAccess).
    func routes() -> APIRouter {
        let router = Router(context: AppRequestContext.self)
        let openAPIDocument = InstalledFiles.contents("docs/openapi.yaml")
        router.add(middleware: JSONErrorMiddleware(documented: DocumentedRoutes(openAPIDocument: openAPIDocument ?? "")))
        let api = APIRouter(router, authenticator: authenticator)
        ClientRoutes(store: store).register(on: api)
        LegacyRoutes(pool: pool, defaultCookies: config.defaultCookies, viewer: viewer).register(on: api)
        V1Routes(pool: pool, openAPIDocument: openAPIDocument, machines: machines).register(on: api)
        MachineRoutes(machines: machines, engine: engine).register(on: api)
        ViewerLaunchRoutes(machines: machines, viewer: viewer).register(on: api)
        PageRoutes(pool: pool, blobs: blobs).register(on: api)
        JobRoutes(pool: pool).register(on: api)
        ViewerRoutes(access: viewer).register(on: api)
        MonitorRoutes(pool: pool, viewer: viewer, stateDirectory: blobs.root).register(on: api)
        ScreenRoutes(pool: pool, screens: screens).register(on: api)
        MetricsRoutes(gauges: StoreGauges(store: store)).register(on: api)
        audioRoutes.register(on: api)
        proxy.register(on: api)
        return api
    }
}
