import ArgumentParser
import Foundation
import VMCloud
import VMCloudCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the appliance: keep the VM pool and serve the API.",
        discussion: """
            Settings come from defaults, then --config, then flags. VMs keep running when the \
            appliance stops; the next start adopts them (and destroys domains of its own that \
            the store does not know).
            """
    )

    @Option(help: "JSON config file; its keys mirror the flags (listen, stateDir, libvirtURI, accel, image, network, memoryMiB, vcpus, bootTimeout, agentTimeout, logLevel, publicURL, audio, reconcileInterval, trustedNetworks, proxyStartTimeout, proxyUpstreamTimeout) plus defaultCookies, the cookies of batches made by /prepare-batch.")
    var config: String?

    @Option(help: "Address to serve the API on, HOST:PORT. (default: 0.0.0.0:8080)")
    var listen: String?

    @Option(help: "Directory for the SQLite store, VM overlays and sockets; must be reachable by the libvirt-qemu user. (default: /var/lib/appliance)")
    var stateDir: String?

    @Option(help: "libvirt connection URI. (default: qemu:///system)")
    var libvirtURI: String?

    @Option(help: "Accelerator: kvm, tcg (software emulation) or auto (a probe guest must really boot under KVM). (default: auto)")
    var accel: String?

    @Option(help: "Guest image directory (disk.qcow2, optional vmlinuz/initrd.img/cmdline). (default: <state-dir>/image, built by `make serve`)")
    var image: String?

    @Option(help: "Guest networking: nat (libvirt's network \"default\", started if needed) or user (QEMU user mode; the host's loopback is 10.0.2.2 in the guest). (default: nat)")
    var network: String?

    @Option(help: "Memory per VM in MiB. (default: 2048)")
    var memory: Int?

    @Option(help: "Virtual CPUs per VM. (default: 2)")
    var vcpus: Int?

    @Option(help: "Seconds a booting VM may take to say hello before it is replaced. (default: 300)")
    var bootTimeout: Double?

    @Option(help: "Seconds to wait for a guest agent's answer to configure/reset. (default: 60)")
    var agentTimeout: Double?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. (default: info)")
    var logLevel: String?

    @Option(help: "The appliance's address as users' browsers reach it, for the viewer links in handle-status, e.g. https://vms.example.org. (default: http:// and the request's Host header)")
    var publicURL: String?

    @Flag(inversion: .prefixedNo, help: "Give every VM a sound card whose output the audio relay streams to /audio/{token} (runs a private PulseAudio daemon). (default: on)")
    var audio: Bool?

    @Option(help: "Seconds between the VM engine's passes when nothing triggers one (it also runs after every change, hello and libvirt event, and when a linger or boot timeout ends). (default: 5)")
    var reconcileInterval: Double?

    @Option(name: .customLong("trusted-network"), help: "A network (ADDRESS/PREFIX) whose unauthenticated calls to the six vmcloud endpoints are allowed; repeat for more. (default: 127.0.0.0/8 and ::1/128)")
    var trustedNetworks: [String] = []

    @Option(help: "Seconds a smart proxy request waits for its resource's VM to start and its guest port to answer, then 504/502. (default: 120)")
    var proxyStartTimeout: Double?

    @Option(help: "Seconds the smart proxy waits for a resource's response head, and between reads of its body. (default: 60)")
    var proxyUpstreamTimeout: Double?

    func resolvedConfig() throws -> ServeConfig {
        var settings = ServeConfig()
        if let config { try settings.apply(file: config) }
        if let listen { try settings.setListen(listen) }
        if let stateDir { settings.stateDir = stateDir }
        if let libvirtURI { settings.libvirtURI = libvirtURI }
        if let accel { try settings.setAccel(accel) }
        if let image { settings.image = image }
        if let network { try settings.setNetwork(network) }
        if let memory { settings.memoryMiB = memory }
        if let vcpus { settings.vcpus = vcpus }
        if let bootTimeout { settings.bootTimeout = bootTimeout }
        if let agentTimeout { settings.agentTimeout = agentTimeout }
        if let logLevel { settings.logLevel = logLevel }
        if let publicURL { try settings.setPublicURL(publicURL) }
        if let audio { settings.audio = audio }
        if let reconcileInterval { settings.reconcileInterval = reconcileInterval }
        if !trustedNetworks.isEmpty { try settings.setTrustedNetworks(trustedNetworks) }
        if let proxyStartTimeout { settings.proxyStartTimeout = proxyStartTimeout }
        if let proxyUpstreamTimeout { settings.proxyUpstreamTimeout = proxyUpstreamTimeout }
        try settings.validate()
        return settings
    }

    func run() async throws {
        let settings: ServeConfig
        do { settings = try resolvedConfig() } catch let error as ServeConfig.Invalid {
            throw ValidationError(error.description)
        }
        try await ApplianceServer(config: settings).run()
    }
}
