import Libvirt

/// Whose guest a domain is. Written into the domain's metadata, it lets a restarted appliance
/// find its own domains again and tell pool VMs from generic VMs.
package enum DomainOwner: Sendable, Hashable {
    case pool(vm: Int64)
    case machine(Int64)
}

/// The one builder of this appliance's libvirt domains. Pool VMs and generic VMs differ only in
/// what they pass in (sizes, disks, audio); the agent channel, the console log, the VNC socket
/// and the metadata that marks a domain as ours are built here for both.
package enum GuestDomain {
    /// XML namespace of the metadata element that marks our domains.
    package static let metadataNamespace = "urn:vmcloud:appliance:1"
    /// The virtio-serial port the guest agent opens.
    package static let agentChannelName = "org.vmcloud.agent.0"

    /// Where a guest's sockets and console log live (per VM, in the state directory).
    package struct Files: Sendable {
        /// nil: the guest runs no agent, so no channel.
        package var agentSocket: String?
        package var consoleLog: String
        package var vncSocket: String

        package init(agentSocket: String? = nil, consoleLog: String, vncSocket: String) {
            self.agentSocket = agentSocket
            self.consoleLog = consoleLog
            self.vncSocket = vncSocket
        }
    }

    package struct Hardware: Sendable {
        package var type: DomainDefinition.HypervisorType
        package var memoryMiB: Int
        package var vcpus: Int
        package var arch = "x86_64"

        package init(type: DomainDefinition.HypervisorType, memoryMiB: Int, vcpus: Int, arch: String = "x86_64") {
            self.type = type
            self.memoryMiB = memoryMiB
            self.vcpus = vcpus
            self.arch = arch
        }
    }

    package struct Disks: Sendable {
        package var hda: String
        package var extra: [DomainDefinition.Disk] = []
        package var cdrom: DomainDefinition.Cdrom?
        package var kernelBoot: DomainDefinition.KernelBoot?

        package init(hda: String, extra: [DomainDefinition.Disk] = [], cdrom: DomainDefinition.Cdrom? = nil, kernelBoot: DomainDefinition.KernelBoot? = nil) {
            self.hda = hda
            self.extra = extra
            self.cdrom = cdrom
            self.kernelBoot = kernelBoot
        }
    }

    package static func definition(
        name: String, owner: DomainOwner, instanceId: String, hardware: Hardware, disks: Disks, files: Files,
        network: GuestNetwork, audio: DomainDefinition.Audio? = nil
    ) -> DomainDefinition {
        DomainDefinition(
            name: name,
            type: hardware.type,
            memoryMiB: hardware.memoryMiB,
            vcpus: hardware.vcpus,
            arch: hardware.arch,
            kernelBoot: disks.kernelBoot,
            diskPath: disks.hda,
            extraDisks: disks.extra,
            cdrom: disks.cdrom,
            networkName: network.libvirtNetwork,
            channel: files.agentSocket.map { .init(socketPath: $0, targetName: agentChannelName) },
            serialLogPath: files.consoleLog,
            vncSocketPath: files.vncSocket,
            audio: audio,
            // Every guest has a screen (VNC); the viewer's clipboard goes through this channel.
            clipboard: true,
            metadata: metadata(owner: owner, instanceId: instanceId))
    }

    package static func metadata(owner: DomainOwner, instanceId: String) -> DomainDefinition.Metadata {
        let id: DomainDefinition.Attribute = switch owner {
        case .pool(let vm): .init("id", String(vm))
        case .machine(let machine): .init("machine", String(machine))
        }
        return .init(namespaceURI: metadataNamespace, prefix: "vmcloud", element: "vm", attributes: [.init("appliance", instanceId), id])
    }

    /// The owner a domain's metadata element names, if it is this instance's; a pool domain
    /// without a readable id is `.pool(vm: -1)` (still ours: the engine destroys it as an orphan).
    package static func owner(metadata element: String, instanceId: String) -> DomainOwner? {
        guard attribute("appliance", in: element) == instanceId else { return nil }
        if let machine = attribute("machine", in: element) { return Int64(machine).map(DomainOwner.machine) }
        return .pool(vm: attribute("id", in: element).flatMap(Int64.init) ?? -1)
    }

    /// Reads `name="value"` (or single-quoted) from the metadata element libvirt returns.
    package static func attribute(_ name: String, in element: String) -> String? {
        for quote in ["\"", "'"] {
            guard let start = element.range(of: " \(name)=\(quote)") else { continue }
            let rest = element[start.upperBound...]
            guard let end = rest.firstIndex(of: Character(quote)) else { return nil }
            return String(rest[..<end])
        }
        return nil
    }
}
