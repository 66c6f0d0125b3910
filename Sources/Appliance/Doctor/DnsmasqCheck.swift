import Foundation

/// libvirt's NAT network hands guests their addresses through dnsmasq.
struct DnsmasqCheck: DoctorCheck {
    let name = "dnsmasq"

    func run() async -> DoctorFinding {
        if let path = ExecutableLookup.find("dnsmasq") {
            return DoctorFinding(check: name, verdict: .ok, detail: path)
        }
        return DoctorFinding(check: name, verdict: .fail, detail: "dnsmasq not found; libvirt's NAT network cannot give guests addresses",
                             advice: "apt-get install dnsmasq-base, or run `serve --network user`")
    }
}
