import AudioRelay
import Foundation
import Libvirt

/// The pool's view of libvirt: builds each VM's domain (overlay, sockets, metadata), starts and
/// destroys it, and finds this appliance's domains again after a restart.
final class Hypervisor: Sendable {
    /// XML namespace of the metadata element that marks our domains.
    static let metadataNamespace = "urn:vmcloud:appliance:1"
    static let agentChannelName = "org.vmcloud.agent.0"

    let libvirt: LibvirtClient
    let state: StateDirectory
    let image: GuestImage
    let accelerator: Accelerator
    let network: GuestNetwork
    let instanceId: String
    let memoryMiB: Int
    let vcpus: Int
    /// Where each VM's sound card plays (a null sink per VM); nil: VMs have no sound card.
    let audio: AudioRelay?

    init(libvirt: LibvirtClient, state: StateDirectory, image: GuestImage, accelerator: Accelerator,
         network: GuestNetwork = .user, instanceId: String, memoryMiB: Int, vcpus: Int, audio: AudioRelay? = nil) {
        self.libvirt = libvirt
        self.state = state
        self.image = image
        self.accelerator = accelerator
        self.network = network
        self.instanceId = instanceId
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.audio = audio
    }

    /// Where a VM's address comes from: its NAT lease, or QEMU's fixed user-mode address.
    var guestAddress: GuestAddress { GuestAddress(libvirt: libvirt, network: network) }

    /// Prefix of our domain names: `vmcloud-<instance>`.
    var domainPrefix: String { "vmcloud-\(instanceId)" }

    /// The PulseAudio sink VM `id` plays into: named like its domain.
    func sinkName(vm id: Int64) -> String { "\(domainPrefix)-vm\(id)" }

    func definition(for vm: VMRecord) -> DomainDefinition {
        let id = vm.id!
        return DomainDefinition(
            name: vm.domainName,
            type: accelerator.domainType,
            memoryMiB: memoryMiB,
            vcpus: vcpus,
            kernelBoot: image.kernel.map { .init(kernelPath: $0, initrdPath: image.initrd, cmdline: image.cmdline) },
            diskPath: state.overlay(vm: id),
            networkName: network.libvirtNetwork,
            channel: .init(socketPath: state.agentSocket(vm: id), targetName: Self.agentChannelName),
            serialLogPath: state.consoleLog(vm: id),
            vncSocketPath: state.vncSocket(vm: id),
            audio: audio.map { .init(serverSocketPath: $0.socketPath, sinkName: sinkName(vm: id)) },
            metadata: .init(
                namespaceURI: Self.metadataNamespace, prefix: "vmcloud", element: "vm",
                attributes: [.init("appliance", instanceId), .init("id", String(id))]))
    }

    /// Creates the VM's overlay (if a crash left none) and starts its transient domain.
    func start(_ vm: VMRecord) async throws {
        let id = vm.id!
        let overlay = state.overlay(vm: id)
        if !FileManager.default.fileExists(atPath: overlay) {
            _ = try await runTool(Self.qemuImg, ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.disk, overlay])
        }
        for stale in [state.agentSocket(vm: id), state.vncSocket(vm: id)] {
            try? FileManager.default.removeItem(atPath: stale)
        }
        try await audio?.ensureSink(sinkName(vm: id))
        _ = try await libvirt.createTransientDomain(xml: definition(for: vm).xml())
    }

    /// Destroys the domain if it runs and removes the VM's files.
    func destroy(vmId: Int64, domainName: String) async throws {
        _ = try await libvirt.destroyDomainReleasingLeases(name: domainName)
        await audio?.removeSink(sinkName(vm: vmId))
        for path in [state.overlay(vm: vmId), state.agentSocket(vm: vmId), state.vncSocket(vm: vmId), state.consoleLog(vm: vmId)] {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Our running pool domains (metadata names this instance), by domain name, with the VM id
    /// the metadata records.
    func ourDomains() async throws -> [String: Int64] {
        var ours: [String: Int64] = [:]
        for domain in try await libvirt.listDomains() {
            let element: String?
            do {
                element = try await libvirt.metadata(domain: domain.name, namespaceURI: Self.metadataNamespace)
            } catch let error as LibvirtError where error.isNoSuchDomain {
                continue  // it went away between the listing and this lookup
            }
            // Generic VMs' domains (`machine=`) are the machine reconciler's, not the pool's.
            guard let element,
                  let appliance = Self.attribute("appliance", in: element), appliance == instanceId,
                  Self.attribute("machine", in: element) == nil
            else { continue }
            ours[domain.name] = Self.attribute("id", in: element).flatMap(Int64.init) ?? -1
        }
        return ours
    }

    /// Reads `name="value"` (or single-quoted) from the metadata element libvirt returns.
    static func attribute(_ name: String, in element: String) -> String? {
        for quote in ["\"", "'"] {
            guard let start = element.range(of: " \(name)=\(quote)") else { continue }
            let rest = element[start.upperBound...]
            guard let end = rest.firstIndex(of: Character(quote)) else { return nil }
            return String(rest[..<end])
        }
        return nil
    }

    static var qemuImg: String {
        ["/usr/bin/qemu-img", "/usr/local/bin/qemu-img"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? "/usr/bin/qemu-img"
    }
}
