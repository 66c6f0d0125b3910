import AudioRelay
import Foundation
import Libvirt

/// The pool's view of libvirt: builds each VM's domain (overlay, sockets, metadata), starts and
/// destroys it, and finds this appliance's domains again after a restart.
package final class Hypervisor: Sendable {
    package let libvirt: LibvirtClient
    package let state: StateDirectory
    package let image: GuestImage
    package let accelerator: Accelerator
    package let network: GuestNetwork
    package let instanceId: String
    package let memoryMiB: Int
    package let vcpus: Int
    /// Where each VM's sound card plays (a null sink per VM); nil: VMs have no sound card.
    package let audio: AudioRelay?

    package init(libvirt: LibvirtClient, state: StateDirectory, image: GuestImage, accelerator: Accelerator,
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
    package var guestAddress: GuestAddress { GuestAddress(libvirt: libvirt, network: network) }

    /// Prefix of our domain names: `vmcloud-<instance>`.
    package var domainPrefix: String { "vmcloud-\(instanceId)" }

    /// The PulseAudio sink VM `id` plays into: named like its domain.
    package func sinkName(vm id: Int64) -> String { "\(domainPrefix)-vm\(id)" }

    package func definition(for vm: VMRecord) -> DomainDefinition {
        let id = vm.id!
        return GuestDomain.definition(
            name: vm.domainName, owner: .pool(vm: id), instanceId: instanceId,
            hardware: .init(type: accelerator.domainType, memoryMiB: memoryMiB, vcpus: vcpus),
            disks: .init(hda: state.overlay(vm: id), kernelBoot: image.kernel.map { .init(kernelPath: $0, initrdPath: image.initrd, cmdline: image.cmdline) }),
            files: .init(agentSocket: state.agentSocket(vm: id), consoleLog: state.consoleLog(vm: id), vncSocket: state.vncSocket(vm: id)),
            network: network,
            audio: audio.map { .init(serverSocketPath: $0.socketPath, sinkName: sinkName(vm: id)) })
    }

    /// Creates the VM's overlay (if a crash left none) and starts its transient domain.
    package func start(_ vm: VMRecord) async throws {
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
    package func destroy(vmId: Int64, domainName: String) async throws {
        _ = try await libvirt.destroyDomainReleasingLeases(name: domainName)
        await audio?.removeSink(sinkName(vm: vmId))
        for path in [state.overlay(vm: vmId), state.agentSocket(vm: vmId), state.vncSocket(vm: vmId), state.consoleLog(vm: vmId)] {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Our running pool domains (metadata names this instance), by domain name, with the VM id
    /// the metadata records.
    package func ourDomains() async throws -> [String: Int64] {
        var ours: [String: Int64] = [:]
        for domain in try await libvirt.listDomains() {
            let element: String?
            do {
                element = try await libvirt.metadata(domain: domain.name, namespaceURI: GuestDomain.metadataNamespace)
            } catch let error as LibvirtError where error.isNoSuchDomain {
                continue  // it went away between the listing and this lookup
            }
            // Generic VMs' domains belong to the machine role, not the pool.
            if let element, case .pool(let vm) = GuestDomain.owner(metadata: element, instanceId: instanceId) {
                ours[domain.name] = vm
            }
        }
        return ours
    }

    package static var qemuImg: String {
        ["/usr/bin/qemu-img", "/usr/local/bin/qemu-img"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? "/usr/bin/qemu-img"
    }
}
