import CLibvirt
import Glibc

/// One DHCP lease of a domain's interface, as libvirt's network (dnsmasq) handed it out.
public struct InterfaceLease: Sendable, Equatable {
    public let mac: String
    public let ipv4: String
}

/// Guest addresses as the host's DHCP server handed them out (virDomainInterfaceAddresses with
/// the lease source: dnsmasq of a libvirt network). Host-side truth: nothing the guest says.
extension LibvirtConnection {
    /// The IPv4 leases of the domain's interfaces; empty when it has none (yet), nil when there
    /// is no such domain.
    func interfaceLeases(domain name: String) throws -> [InterfaceLease]? {
        guard let conn = pointer else { throw LibvirtClientError.notConnected }
        guard let dom = try DomainHandle.lookup(conn, name: name) else { return nil }
        var list: UnsafeMutablePointer<virDomainInterfacePtr?>?
        let count = virDomainInterfaceAddresses(dom.pointer, &list, UInt32(VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE.rawValue), 0)
        guard count >= 0 else {
            let error = LibvirtError.takeLast(operation: "virDomainInterfaceAddresses(\(name))")
            if error.isNoSuchDomain { return nil }
            throw error
        }
        guard let list else { return [] }
        defer {
            for index in 0..<Int(count) { if let iface = list[index] { virDomainInterfaceFree(iface) } }
            free(list)
        }
        var leases: [InterfaceLease] = []
        for index in 0..<Int(count) {
            guard let iface = list[index]?.pointee, let addrs = iface.addrs, let mac = iface.hwaddr else { continue }
            for a in 0..<Int(iface.naddrs) where addrs[a].type == Int32(VIR_IP_ADDR_TYPE_IPV4.rawValue) {
                if let text = addrs[a].addr { leases.append(InterfaceLease(mac: String(cString: mac), ipv4: String(cString: text))) }
            }
        }
        return leases
    }
}

extension LibvirtClient {
    /// The IPv4 leases libvirt's DHCP server gave the domain (empty before its guest asked; nil
    /// for no such domain).
    public func interfaceLeases(domain name: String) async throws -> [InterfaceLease]? {
        try await perform { try $0.interfaceLeases(domain: name) }
    }

    /// The IPv4 addresses libvirt's DHCP server leased to the domain (empty before its guest
    /// asked; nil for no such domain).
    public func leasedIPv4Addresses(domain name: String) async throws -> [String]? {
        try await interfaceLeases(domain: name)?.map(\.ipv4)
    }
}
