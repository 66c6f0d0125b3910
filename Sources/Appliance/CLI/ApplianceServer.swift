import AgentProtocol
import Foundation
import Hummingbird
import Libvirt
import Logging
import NIOPosix
import ServiceLifecycle

/// Wires the parts together for `appliance serve`: state directory, store, libvirt, the
/// accelerator probe, the pool and the HTTP API.
struct ApplianceServer {
    let config: ServeConfig

    func run() async throws {
        var logger = Logger(label: "appliance")
        logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info

        let state = StateDirectory(root: config.stateDir)
        try state.prepare()
        let image = try GuestImage.load(directory: config.imageDirectory)
        let store = try Store(path: state.database)
        logger.info("store open", metadata: ["path": "\(state.database)", "instance": "\(store.instanceId)"])

        let libvirtLogger = logger
        let libvirt = LibvirtClient(uri: config.libvirtURI) { libvirtLogger.info("\($0)", metadata: ["component": "libvirt"]) }
        try await libvirt.connect()
        let accelerator = try await AccelProbe(libvirt: libvirt, state: state, image: image, logger: logger)
            .resolve(config.accel)
        logger.info("accelerator chosen", metadata: ["accel": "\(accelerator.rawValue)", "asked": "\(config.accel.rawValue)"])

        if let network = config.network.libvirtNetwork {
            do {
                if try await libvirt.ensureNetworkActive(name: network) { logger.info("started libvirt network", metadata: ["network": "\(network)"]) }
            } catch {
                throw ServeConfig.Invalid(description: "libvirt network '\(network)' is not usable (\(error)); install dnsmasq-base or run with --network user")
            }
        }
        let hypervisor = Hypervisor(
            libvirt: libvirt, state: state, image: image, accelerator: accelerator, network: config.network, instanceId: store.instanceId,
            memoryMiB: config.memoryMiB, vcpus: config.vcpus)
        let blobs = try BlobStore(root: state.blobsDir)
        let captures = CaptureReceiver(blobs: blobs, logger: logger)
        let pool = Pool(
            store: store, hypervisor: hypervisor, captures: captures,
            settings: PoolSettings(bootTimeout: config.bootTimeout, agentTimeout: config.agentTimeout),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)

        let router = Self.router(pool: pool, blobs: blobs, defaultCookies: config.defaultCookies)
        let runningLogger = logger
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(config.listenHost, port: config.listenPort), serverName: "vmcloud-appliance"),
            services: [PoolService(pool: pool)],
            onServerRunning: { channel in
                runningLogger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
        try await app.runService()
        await libvirt.close()
    }
}

extension ApplianceServer {
    /// Every route of the API over one pool.
    static func router(pool: Pool, blobs: BlobStore, defaultCookies: [AgentProtocol.Cookie] = []) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        LegacyRoutes(pool: pool, defaultCookies: defaultCookies).register(on: router)
        V1Routes(pool: pool, openAPIDocument: OpenAPIDocument.load()).register(on: router)
        PageRoutes(pool: pool, blobs: blobs).register(on: router)
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

/// The OpenAPI document (docs/openapi.yaml), found beside an installed binary or in the source
/// tree the binary was built from.
enum OpenAPIDocument {
    static func load() -> String? {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            "/usr/share/vmcloud/openapi.yaml",
            executable.deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml").path,
            executable.deletingLastPathComponent().appendingPathComponent("../../../docs/openapi.yaml").path,
        ]
        return candidates.lazy.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.first
    }
}
