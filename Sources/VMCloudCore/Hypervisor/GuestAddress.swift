import Foundation
import Libvirt

/// A guest's IPv4 address as the host knows it. On libvirt's NAT network that is the lease
/// dnsmasq gave the domain's MAC (virDomainInterfaceAddresses, lease source), never what the
/// guest says: a guest could claim another VM's address, and its own hello can race its DHCP
/// client (three TCG browsers booting at once sent hello a moment before their lease). Under
/// QEMU's user networking there is no lease to read; every guest is QEMU's fixed 10.0.2.15.
package struct GuestAddress: Sendable {
    package let libvirt: LibvirtClient
    package let network: GuestNetwork
    /// How long `address` waits for a lease that has not come yet.
    package var leaseWait: Duration = .seconds(30)

    package init(libvirt: LibvirtClient, network: GuestNetwork, leaseWait: Duration = .seconds(30)) {
        self.libvirt = libvirt
        self.network = network
        self.leaseWait = leaseWait
    }

    package static let userModeAddress = "10.0.2.15"

    /// The domain's address; nil if the guest got no lease within `leaseWait` (the network is
    /// out of addresses, or the guest's DHCP client failed).
    package func address(domain: String) async -> String? {
        guard network == .nat else { return Self.userModeAddress }
        let deadline = ContinuousClock.now + leaseWait
        while true {
            if let lease = try? await libvirt.leasedIPv4Addresses(domain: domain)?.first { return lease }
            guard ContinuousClock.now < deadline else { return nil }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
}
