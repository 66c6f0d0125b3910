import Foundation
import Libvirt
import VMCloudCore

/// `serve --network nat` (the default) puts guests on libvirt's network "default"; it starts
/// the network itself when defined but inactive, so only a missing definition is a failure.
struct NATNetworkCheck: DoctorCheck {
    let libvirtURI: String
    var network = "default"
    var name: String { "libvirt network \(network)" }

    func run() async -> DoctorFinding {
        let client = LibvirtClient(uri: libvirtURI, reconnectWait: .seconds(2))
        do {
            try await client.connect()
            let active = try await client.networkIsActive(name: network)
            await client.close()
            if active {
                return DoctorFinding(check: name, verdict: .ok, detail: "defined and active")
            }
            return DoctorFinding(check: name, verdict: .warn, detail: "defined but not active (serve starts it)",
                                 advice: "virsh net-start \(network); virsh net-autostart \(network)")
        } catch {
            await client.close()
            return DoctorFinding(check: name, verdict: .fail, detail: "\(error)",
                                 advice: "define it (virsh net-define /usr/share/libvirt/networks/default.xml; virsh net-start default), or run `serve --network user`")
        }
    }
}
