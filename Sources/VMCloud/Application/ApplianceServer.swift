import AgentProtocol
import AudioRelay
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Libvirt
import Logging
import NIOPosix
import ServiceLifecycle

/// Wires the parts together for `appliance serve`: state directory, store, libvirt, the
/// accelerator probe, the pool and the HTTP API.
package struct ApplianceServer {
    let config: ServeConfig

    package init(config: ServeConfig) { self.config = config }

    package func run() async throws {
        // Before any part creates a metric (a metric made earlier would report nowhere).
        MetricsBackend.bootstrap()
        var logger = Logger(label: "appliance")
        logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info

        let state = StateDirectory(root: config.stateDir)
        try state.prepare()
        let image = try GuestImage.load(directory: config.imageDirectory)
        let store = try Store(path: state.database)
        logger.info("store open", metadata: ["path": "\(state.database)", "instance": "\(store.instanceId)"])
        if let key = try await AdminKey.ensure(store: store, path: state.adminKey) {
            // Shown once: the store keeps only derivations of it.
            // Unbuffered: stdout may be a file, and the line must not wait in a buffer.
            FileHandle.standardOutput.write(Data("admin key (also in \(state.adminKey), mode 0600): \(key.text)\n".utf8))
            logger.notice("admin client created", metadata: ["keyFile": "\(state.adminKey)"])
        }
        let requestCounter = RequestCounter()
        let authenticator = Authenticator(store: store, trusted: config.trustedNetworks, counter: requestCounter)

        let libvirtLogger = logger
        let libvirt = LibvirtClient(uri: config.libvirtURI) { libvirtLogger.info("\($0)", metadata: ["component": "libvirt"]) }
        try await Self.connect(libvirt, logger: logger)
        let accelerator = try await AccelProbe(libvirt: libvirt, state: state, image: image, logger: logger)
            .resolve(config.accel)
        logger.info("accelerator chosen", metadata: ["accel": "\(accelerator.rawValue)", "asked": "\(config.accel.rawValue)"])

        if let network = config.network.libvirtNetwork {
            do {
                let started = try await Self.whileLibvirtIsDown("checking network \(network)", logger: logger) {
                    try await libvirt.ensureNetworkActive(name: network)
                }
                if started { logger.info("started libvirt network", metadata: ["network": "\(network)"]) }
            } catch {
                throw ServeConfig.Invalid(description: "libvirt network '\(network)' is not usable (\(error)); install dnsmasq-base or run with --network user")
            }
        }
        let audio = try await Self.startAudio(config: config, state: state, logger: logger)
        let hypervisor = Hypervisor(
            libvirt: libvirt, state: state, image: image, accelerator: accelerator, network: config.network, instanceId: store.instanceId,
            memoryMiB: config.memoryMiB, vcpus: config.vcpus, audio: audio)
        let blobs = try BlobStore(root: state.blobsDir)
        let captures = CaptureReceiver(blobs: blobs, logger: logger)
        let images = ImageStore(root: state.imagesDir)
        let reconciler = MachineReconciler(
            store: store, libvirt: libvirt, state: state, disks: MachineDisks(images: images, qemuImg: Hypervisor.qemuImg),
            network: config.network, settings: .init(pollInterval: config.reconcileInterval),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let machines = MachineService(reconciler: reconciler, images: images, kvmUsable: accelerator == .kvm)
        let pool = Pool(
            store: store, hypervisor: hypervisor, captures: captures,
            settings: PoolSettings(bootTimeout: config.bootTimeout, agentTimeout: config.agentTimeout),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger,
            eventObserver: { reconciler.libvirtEvent($0) })

        let viewer = ViewerAccess(
            tokens: try AccessTokens.load(path: state.viewerSecret), store: store, publicURL: config.publicURL,
            vncSocket: { [state] in state.vncSocket(vm: $0) })
        let screens = ScreenshotCache { try await libvirt.screenshot(domainName: $0) }
        let audioRoutes = AudioRoutes(access: viewer, relay: audio, sinkName: { [hypervisor] in hypervisor.sinkName(vm: $0) })
        let proxy = SmartProxy(
            machines: machines, settings: .init(startTimeout: config.proxyStartTimeout, upstreamTimeout: config.proxyUpstreamTimeout), logger: logger)
        let router = Self.router(pool: pool, authenticator: authenticator, blobs: blobs, viewer: viewer, screens: screens, audio: audioRoutes, machines: machines,
                                 proxy: proxy, defaultCookies: config.defaultCookies)
        let webSockets = Router(context: ViewerWebSocketContext.self)
        ViewerRoutes(access: viewer).registerWebSocket(on: webSockets)
        audioRoutes.registerWebSocket(on: webSockets)
        proxy.registerWebSocket(on: webSockets, authenticator: authenticator)
        let runningLogger = logger
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: webSockets,
                configuration: .init(ws: ViewerRoutes.webSocketConfiguration)),
            configuration: .init(address: .hostname(config.listenHost, port: config.listenPort), serverName: "vmcloud-appliance"),
            // Each restarted when it throws: an outside fault must not end the service group.
            services: ([PoolService(pool: pool), MachineReconcilerService(reconciler: reconciler),
                        ViewerAccessService(access: viewer, logger: logger),
                        RequestCounterService(counter: requestCounter, store: store, logger: logger)] + proxy.services)
                .map { $0.restarting(as: "\(type(of: $0))", logger: logger) },
            onServerRunning: { channel in
                runningLogger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
        try await app.runService()
        await audio?.shutdown()
        await libvirt.close()
    }

    /// Connects, waiting up to a minute for a libvirtd that is (re)starting, as after a host boot
    /// or a daemon restart; then fails with libvirt's own reason.
    static func connect(_ libvirt: LibvirtClient, logger: Logger) async throws {
        try await whileLibvirtIsDown("connecting to \(libvirt.uri)", logger: logger, retryAnyError: true) { try await libvirt.connect() }
    }

    /// Runs a start-up step that needs libvirt, again every 2 s for up to a minute while libvirtd
    /// is down or restarting (any error when `retryAnyError`); other errors are thrown at once.
    static func whileLibvirtIsDown<T: Sendable>(
        _ what: String, logger: Logger, retryAnyError: Bool = false, _ step: () async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                return try await step()
            } catch {
                guard retryAnyError || isLibvirtUnreachable(error), ContinuousClock.now < deadline else { throw error }
                logger.warning("libvirt not reachable yet; retrying", metadata: ["step": "\(what)", "error": "\(error)"])
                try await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// The audio relay with its PulseAudio daemon, unless audio is off.
    static func startAudio(config: ServeConfig, state: StateDirectory, logger: Logger) async throws -> AudioRelay? {
        guard config.audio else { return nil }
        // Without its PulseAudio module QEMU refuses to start any VM with a sound card.
        let qemuModule = "/usr/lib/x86_64-linux-gnu/qemu/audio-pa.so"
        guard FileManager.default.fileExists(atPath: qemuModule) else {
            throw ServeConfig.Invalid(description: "audio: QEMU's PulseAudio backend \(qemuModule) is missing (apt-get install qemu-system-gui), or run with --no-audio")
        }
        let relay = try AudioRelay(socketPath: state.audioSocket, runtimeDirectory: state.audioRuntime, logger: logger)
        do {
            try await relay.start(afterDaemonStarted: { await TestGate.pass("audio") })
        } catch {
            throw ServeConfig.Invalid(description: "audio: \(error) (install pulseaudio, or run with --no-audio)")
        }
        return relay
    }
}

extension ApplianceServer {
    /// Every route of the API over one pool.
    static func router(
        pool: Pool, authenticator: Authenticator, blobs: BlobStore, viewer: ViewerAccess, screens: ScreenshotCache, audio: AudioRoutes,
        machines: MachineService? = nil, proxy: SmartProxy? = nil, defaultCookies: [AgentProtocol.Cookie] = []
    ) -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        let openAPIDocument = InstalledFiles.contents("docs/openapi.yaml")
        router.add(middleware: JSONErrorMiddleware(documented: DocumentedRoutes(openAPIDocument: openAPIDocument ?? "")))
        router.add(middleware: AuthMiddleware(authenticator: authenticator))
        ClientRoutes(store: pool.store).register(on: router)
        LegacyRoutes(pool: pool, defaultCookies: defaultCookies, viewer: viewer).register(on: router)
        V1Routes(pool: pool, openAPIDocument: openAPIDocument, machines: machines).register(on: router)
        let adminOnly = router.group().add(middleware: AdminOnlyMiddleware())
        if let machines {
            MachineRoutes(machines: machines).register(on: adminOnly)
            ViewerLaunchRoutes(machines: machines).register(on: router)
        }
        PageRoutes(pool: pool, blobs: blobs).register(on: router)
        JobRoutes(pool: pool).register(on: router)
        ViewerRoutes(access: viewer).register(on: router)
        MonitorRoutes(pool: pool, viewer: viewer, stateDirectory: blobs.root).register(on: router)
        ScreenRoutes(pool: pool, screens: screens).register(on: adminOnly)
        MetricsRoutes(gauges: StoreGauges(store: pool.store)).register(on: adminOnly)
        audio.register(on: router)
        proxy?.register(on: router)
        return router
    }
}

/// Runs the pool's reconcile loop for the lifetime of the server.
struct PoolService: Service {
    let pool: Pool

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await pool.run() }
    }
}

/// Runs the generic VMs' reconciler for the lifetime of the server.
struct MachineReconcilerService: Service {
    let reconciler: MachineReconciler

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await reconciler.run() }
    }
}
