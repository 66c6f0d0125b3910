import Foundation
import Libvirt

/// What the API asks of generic VMs: validated changes to the desired state, each followed by
/// a kick of the engine (the pusher). Live changes that cannot wait for a pass (the
/// cdrom's media) go to libvirt here.
package struct MachineService: Sendable {
    package let role: MachineRole
    package let images: ImageStore
    package let kvmUsable: Bool

    package init(role: MachineRole, images: ImageStore, kvmUsable: Bool) {
        self.role = role
        self.images = images
        self.kvmUsable = kvmUsable
    }

    package var store: Store { role.store }

    /// The engine runs a pass soon.
    package func kick() { role.kick() }

    package func create(_ request: MachineRequest) async throws -> MachineRecord {
        let (name, spec) = try request.validated(host: .init(kvmUsable: kvmUsable, images: images))
        let machine = try await store.createMachine(name: name, spec: spec)
        kick()
        return machine
    }

    /// Wants the VM `desired`; refused for a VM that is destroyed or being destroyed, and for a
    /// keyed viewer's VM unless its owner (the viewer routes, with the access key) asks.
    package func want(_ ref: String, _ desired: MachineDesired, asOwner: Bool = false) async throws -> MachineRecord {
        let machine = try await store.machine(ref: ref)
        try requireUnowned(machine, asOwner: asOwner)
        if desired != .destroyed, machine.status == .failedToStart {
            // Asking again after a failed start is a new try.
            try await store.setStatus(machine: machine.id!, from: [.failedToStart], to: .starting, reason: nil, agentSeen: false,
                                      event: "start asked again after a failed start")
        }
        guard let updated = try await store.setDesired(machine: machine.id!, desired) else {
            throw Refusal.conflict(code: "vm_destroyed", "VM \(machine.name) is \(machine.desired == .destroyed ? "being destroyed" : machine.status.rawValue)")
        }
        kick()
        return updated
    }

    /// The seed's modify: save targets, and the cdrom (inserted or ejected live once the VM
    /// has finished installing).
    package func modify(_ ref: String, _ change: MachineModification) async throws -> MachineRecord {
        var machine = try await store.machine(ref: ref)
        try requireUnowned(machine, asOwner: false)
        guard machine.desired != .destroyed else { throw Refusal.conflict(code: "vm_destroyed", "VM \(machine.name) is destroyed") }
        let hda = try change.hda_save_to.map { try MachineValidation.saveTarget($0, "hda_save_to") }
        let hdb = try change.hdb_save_to.map { try MachineValidation.saveTarget($0, "hdb_save_to") }
        if hdb != nil, hdb! != nil, machine.spec.hdb == nil { throw Refusal.invalid("hdb_save_to needs an hdb_image") }
        var cdrom: ImageReference??
        if let raw = change.cd_image {
            if machine.status == .installing || machine.status == .starting {
                throw Refusal.conflict(code: "vm_installing", "the cdrom can be changed once the VM is running (it is \(machine.status.rawValue))")
            }
            if raw.isEmpty {
                cdrom = .some(nil)
            } else {
                let reference = try MachineValidation.image(raw, "cd_image", in: images)
                guard case .stored = reference else { throw Refusal.invalid("cd_image of an existing VM must be a file in the image store") }
                cdrom = .some(reference)
            }
            if machine.status.hasDomain, case .some(let media) = cdrom {
                let path: String? = media.map { images.path($0.description) }
                try await role.libvirt.updateDevice(name: machine.domainName, deviceXML: try DomainDefinition.cdromDeviceXML(mediaPath: path))
            }
        }
        var notes: [String] = []
        if let hda { notes.append("hda_save_to=\(hda ?? "")") }
        if let hdb { notes.append("hdb_save_to=\(hdb ?? "")") }
        if let cdrom { notes.append("cd_image=\(cdrom?.description ?? "")") }
        let newCdrom = cdrom
        machine = try await store.updateSpec(machine: machine.id!, { spec in
            if let hda { spec.hdaSaveTo = hda }
            if let hdb { spec.hdbSaveTo = hdb }
            if let newCdrom { spec.cdrom = newCdrom }
        }, event: notes.isEmpty ? "nothing changed" : notes.joined(separator: " "))
        return machine
    }

    /// Starts libvirt's virtual network `name` (e.g. "default", its NAT) unless it runs already.
    package func ensureNetworkActive(_ name: String) async throws {
        _ = try await role.libvirt.ensureNetworkActive(name: name)
    }

    /// The first IPv4 address libvirt's DHCP server leased to the domain; nil before its guest
    /// asked (or for no such domain).
    package func leasedAddress(domain: String) async throws -> String? {
        try await role.libvirt.leasedIPv4Addresses(domain: domain)?.first
    }

    private func requireUnowned(_ machine: MachineRecord, asOwner: Bool) throws {
        guard let owner = machine.ownerKey, !asOwner else { return }
        throw Refusal.conflict(code: "vm_owned", owner.hasPrefix("resource:")
                           ? "VM \(machine.name) belongs to smart proxy \(owner); it is started by requests and stopped when idle (DELETE /v1/resources/{id} removes it)"
                           : "VM \(machine.name) belongs to \(owner); change it through /v1/viewers with its access key")
    }
}
