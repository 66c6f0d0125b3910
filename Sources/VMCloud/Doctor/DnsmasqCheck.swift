import Foundation
import Libvirt
import VMCloudCore

/// libvirt's NAT network hands guests their addresses through dnsmasq; `dhcp_release` hands a
/// destroyed VM's address back (DomainTeardown.swift), without which a pool that replaces its VMs
/// runs out of addresses within the lease hour.
struct DnsmasqCheck: DoctorCheck {
    let name = "dnsmasq"
    var releaseTool = LibvirtClient.dhcpRelease

    func run() async -> DoctorFinding {
        guard let path = ExecutableLookup.find("dnsmasq") else {
            return DoctorFinding(check: name, verdict: .fail, detail: "dnsmasq not found; libvirt's NAT network cannot give guests addresses",
                                 advice: "apt-get install dnsmasq-base, or run `serve --network user`")
        }
        guard FileManager.default.isExecutableFile(atPath: releaseTool) else {
            return DoctorFinding(check: name, verdict: .warn,
                                 detail: "\(path); \(releaseTool) missing: destroyed VMs keep their NAT lease for an hour, so a busy pool can run out of addresses",
                                 advice: "apt-get install dnsmasq-utils")
        }
        return DoctorFinding(check: name, verdict: .ok, detail: "\(path), \(releaseTool)")
    }
}
