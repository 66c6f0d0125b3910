import Foundation
import Libvirt
import VMCloudCore

/// Connects through the appliance's own libvirt client, as `serve` would (but without its minute of retries).
struct LibvirtReachableCheck: DoctorCheck {
    let uri: String
    let name = "libvirt"

    func run() async -> DoctorFinding {
        let client = LibvirtClient(uri: uri, reconnectWait: .seconds(2))
        do {
            try await client.connect()
            await client.close()
            return DoctorFinding(check: name, verdict: .ok, detail: "connected to \(uri)")
        } catch {
            await client.close()
            return DoctorFinding(check: name, verdict: .fail, detail: "cannot connect to \(uri): \(error)",
                                 advice: "install and start libvirt (apt-get install libvirt-daemon-system; service libvirtd start), or pass the right --libvirt-uri")
        }
    }
}
