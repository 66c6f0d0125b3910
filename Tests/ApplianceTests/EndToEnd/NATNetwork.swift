import Foundation
import Testing

/// libvirt's NAT network "default", the network `serve` puts guests on unless told otherwise,
/// read through virsh: the host's address on it, a domain's MAC, and the leases dnsmasq gave.
/// The tests compare what the appliance reports with these, the host-side truth.
enum NATNetwork {
    static let name = "default"

    /// A lease in dnsmasq's table.
    struct Lease: Equatable {
        let mac: String
        let ip: String
    }

    /// Starts the network if it is defined but inactive (fixtures bind to its bridge address
    /// before the appliance would start it).
    static func ensureActive() throws {
        let info = try virsh(["net-info", name])
        if info.range(of: #"Active:\s+yes"#, options: .regularExpression) != nil { return }
        try virsh(["net-start", name])
    }

    /// The host's address on the network (the gateway the guests see, 192.168.122.1 by default).
    static func hostAddress() throws -> String {
        try ensureActive()
        let xml = try virsh(["net-dumpxml", name])
        guard let match = xml.firstMatch(of: /<ip address='([0-9.]+)'/) else {
            throw ApplianceProcess.Failure("no IPv4 address in net-dumpxml \(name)")
        }
        return String(match.1)
    }

    /// The MAC of the domain's interface on this network (libvirt picks it: 52:54:00:...).
    static func mac(domain: String) throws -> String {
        // " vnet3   network   default   virtio   52:54:00:12:34:56"
        for line in try virsh(["domiflist", domain]).split(separator: "\n") {
            let columns = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if columns.count >= 5, columns[1] == "network", columns[2] == name { return columns[4] }
        }
        throw ApplianceProcess.Failure("domain \(domain) has no interface on network \(name)")
    }

    /// dnsmasq's current leases.
    static func leases() throws -> [Lease] {
        // " 2026-12-07 06:01:43   52:54:00:35:6e:e2   ipv4   192.168.122.78/24   -   01:52:..."
        try virsh(["net-dhcp-leases", name]).split(separator: "\n").compactMap { line in
            let columns = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard columns.count >= 5, columns[3] == "ipv4" else { return nil }
            return Lease(mac: columns[2], ip: String(columns[4].prefix { $0 != "/" }))
        }
    }

    /// The address dnsmasq leased to `mac`, nil if none.
    static func leasedIP(mac: String) throws -> String? {
        try leases().first { $0.mac == mac }?.ip
    }

    /// Each VM's reported `ip` is the lease of its own domain's MAC, and no two VMs share one.
    /// Returns the IPs by VM id.
    @discardableResult
    static func expectLeasedIPs(_ vms: [[String: Any]], sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int: String] {
        var ips: [Int: String] = [:]
        let table = try leases()
        for vm in vms {
            let id = vm["id"] as? Int ?? -1
            let domain = vm["domain"] as? String ?? ""
            let mac = try mac(domain: domain)
            let lease = table.first { $0.mac == mac }?.ip
            #expect(lease != nil, "no lease for VM \(id)'s MAC \(mac)", sourceLocation: sourceLocation)
            #expect(vm["ip"] as? String == lease, "VM \(id) reports \(vm["ip"] ?? "nil"), its MAC \(mac) has lease \(lease ?? "none")",
                    sourceLocation: sourceLocation)
            if let lease { ips[id] = lease }
        }
        #expect(Set(ips.values).count == ips.count, "VMs share an address: \(ips)", sourceLocation: sourceLocation)
        return ips
    }

    /// Hands the leases of these MACs back to dnsmasq (test cleanup for domains the test
    /// destroyed itself; the appliance does this for the domains it destroys).
    static func release(macs: [String]) {
        guard !macs.isEmpty, let bridge = try? virsh(["net-info", name]).firstMatch(of: /Bridge:\s+(\S+)/)?.1,
              let table = try? leases() else { return }
        for lease in table where macs.contains(lease.mac) {
            _ = try? runTool("/usr/bin/dhcp_release", [String(bridge), lease.ip, lease.mac])
        }
    }

    @discardableResult
    static func virsh(_ arguments: [String]) throws -> String {
        try runTool("/usr/bin/virsh", ["-c", "qemu:///system"] + arguments)
    }
}
