import AgentProtocol
import AudioRelay
import Foundation
import Libvirt
import Logging
import NIOPosix
import VMCloudCore

/// The appliance's object graph, wired once from a config: `buildApplication` serves it, the
/// test harness drives its router, the reconcile benchmark times its engine. Nothing here
/// runs yet: the services do, under the application's service group.
package struct ApplianceParts: Sendable {
    package let config: ServeConfig
    package let logger: Logger
    let state: StateDirectory
    let store: Store
    let libvirt: LibvirtClient
    let audio: AudioRelay?
    let hypervisor: Hypervisor
    let blobs: BlobStore
    let agents: GuestAgents
    let machines: MachineService
    let pool: Pool
    let engine: VMEngine
    let watch: DomainWatch
    let viewer: ViewerAccess
    let screens: ScreenshotCache
    let audioRoutes: AudioRoutes
    let proxy: SmartProxy
    let requestCounter: RequestCounter
    let authenticator: Authenticator

    /// Opens the store (creating the admin client on first start), connects to libvirt (waiting
    /// for a restarting libvirtd), picks the accelerator, makes sure the NAT network runs and
    /// starts the audio daemon; then builds every part over them.
    package static func wire(_ config: ServeConfig, logger: Logger) async throws -> ApplianceParts {
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
        try await LibvirtStartup.connect(libvirt, logger: logger)
        let accelerator = try await AccelProbe(libvirt: libvirt, state: state, image: image, logger: logger)
            .resolve(config.accel)
        logger.info("accelerator chosen", metadata: ["accel": "\(accelerator.rawValue)", "asked": "\(config.accel.rawValue)"])
        if let network = config.network.libvirtNetwork {
            try await LibvirtStartup.ensureNetwork(network, libvirt: libvirt, logger: logger)
        }
        let audio = try await AudioStartup.start(config: config, state: state, logger: logger)

        let hypervisor = Hypervisor(
            libvirt: libvirt, state: state, image: image, accelerator: accelerator, network: config.network, instanceId: store.instanceId,
            memoryMiB: config.memoryMiB, vcpus: config.vcpus, audio: audio)
        let blobs = try BlobStore(root: state.blobsDir)
        let images = ImageStore(root: state.imagesDir)
        let agents = GuestAgents(group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let trigger = PassTrigger()
        let role = MachineRole(
            store: store, libvirt: libvirt, state: state, disks: MachineDisks(images: images, qemuImg: Hypervisor.qemuImg),
            network: config.network, agents: agents, trigger: trigger, logger: logger)
        let machines = MachineService(role: role, images: images, kvmUsable: accelerator == .kvm)
        let settings = PoolSettings(bootTimeout: config.bootTimeout, agentTimeout: config.agentTimeout)
        let pool = Pool(
            store: store, hypervisor: hypervisor, captures: CaptureReceiver(blobs: blobs, logger: logger),
            settings: settings, agents: agents, trigger: trigger, logger: logger)
        let engine = VMEngine(
            store: store, libvirt: libvirt, roles: [pool, role], agents: agents, trigger: trigger,
            reaper: Reaper(store: store, hypervisor: hypervisor), pollInterval: config.reconcileInterval,
            reapInterval: settings.reapInterval, logger: logger)
        let viewer = ViewerAccess(
            tokens: try AccessTokens.load(path: state.viewerSecret), store: store, publicURL: config.publicURL,
            vncSocket: { [state] in state.vncSocket(vm: $0) })
        return ApplianceParts(
            config: config, logger: logger, state: state, store: store, libvirt: libvirt, audio: audio, hypervisor: hypervisor,
            blobs: blobs, agents: agents, machines: machines, pool: pool, engine: engine,
            watch: DomainWatch(libvirt: libvirt, instanceId: store.instanceId), viewer: viewer,
            screens: ScreenshotCache { try await libvirt.screenshot(domainName: $0) },
            audioRoutes: AudioRoutes(access: viewer, relay: audio, sinkName: { [hypervisor] in hypervisor.sinkName(vm: $0) }),
            proxy: SmartProxy(
                machines: machines,
                settings: .init(startTimeout: config.proxyStartTimeout, upstreamTimeout: config.proxyUpstreamTimeout),
                publicURL: config.publicURL, logger: logger),
            requestCounter: requestCounter, authenticator: authenticator)
    }
}
