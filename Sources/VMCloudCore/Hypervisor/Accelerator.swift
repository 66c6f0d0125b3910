import Libvirt

/// How guests are run: hardware KVM or QEMU's software emulation (TCG).
package enum Accelerator: String, Sendable, CaseIterable {
    case kvm, tcg

    /// libvirt's `<domain type=...>` for this accelerator.
    package var domainType: DomainDefinition.HypervisorType { self == .kvm ? .kvm : .qemu }
}

/// What the operator asked for; `auto` is resolved by a probe boot (see AccelProbe).
package enum AcceleratorChoice: String, Sendable, CaseIterable, Codable {
    case kvm, tcg, auto
}

/// How guests reach the network.
package enum GuestNetwork: String, Sendable, CaseIterable, Codable {
    /// libvirt's NAT network "default".
    case nat
    /// QEMU's user-mode networking.
    case user

    /// The libvirt network the NIC joins; nil for user mode.
    package var libvirtNetwork: String? { self == .nat ? "default" : nil }
}
