import Foundation
import Libvirt

/// libvirt's NAT network keeps a guest's DHCP lease for an hour after the guest is gone, and
/// every new domain gets a new MAC, so a pool that replaces its VMs would use up the network's
/// 253 addresses within the hour and new guests would boot without an address. Destroying a
/// domain therefore hands its leases back to libvirt's dnsmasq: `dhcp_release` (dnsmasq-utils)
/// sends the DHCPRELEASE the killed guest never sent.
///
/// The leases are read from libvirt (host-side truth), never from what the guest reported, so a
/// guest cannot make the appliance release another VM's address. A domain whose QEMU already
/// died has no leases to read; its lease expires on its own.
extension LibvirtClient {
    package static let dhcpRelease = "/usr/bin/dhcp_release"

    /// Destroys the domain (and undefines it if persistent), then releases the DHCP leases it
    /// held. False if there was no such domain. A lease that cannot be released is left to
    /// expire: it never fails the destroy.
    package func destroyDomainReleasingLeases(name: String) async throws -> Bool {
        let leases = (try? await interfaceLeases(domain: name)) ?? []
        let destroyed = try await destroyDomain(name: name)
        guard !leases.isEmpty, FileManager.default.isExecutableFile(atPath: Self.dhcpRelease),
              let bridge = try? await networkBridgeName(name: GuestNetwork.nat.libvirtNetwork!)
        else { return destroyed }
        for lease in leases {
            // Without a client id: dnsmasq then matches the lease by address and MAC, whatever
            // client id the guest's DHCP client used.
            _ = try? await runTool(Self.dhcpRelease, [bridge, lease.ipv4, lease.mac])
        }
        return destroyed
    }
}
