import Foundation

/// A generic VM as the API shows it: the seed's status answer (`success`, `message`, `uuid`,
/// `name`, `status`, `vnc`) plus the desired state, the reason of a failure and the spec.
struct MachineView: Encodable {
    let success = true
    let message: String
    let uuid: String
    let name: String
    let status: String
    let desired: String
    let reason: String?
    let ip: String?
    /// QEMU's VNC socket on the host, once the VM runs (not while its agent installs).
    let vnc: String?
    let hypervisor: String
    let cpu_count: Int
    let mem_size: Int
    let sys_arch: String
    let hda_image: String
    let hda_save_to: String?
    let hdb_image: String?
    let hdb_save_to: String?
    let cd_image: String?
    let run_agent: Bool
    let on_crash: String
    let domain: String
    let createdAt: Date
    let statusSince: Date

    init(_ machine: MachineRecord, files: MachineFiles) {
        let spec = machine.spec
        message = machine.reason ?? "\(machine.status.rawValue) (wanted \(machine.desired.rawValue))"
        uuid = machine.uuid
        name = machine.name
        status = machine.status.rawValue
        desired = machine.desired.rawValue
        reason = machine.reason
        ip = machine.ip
        vnc = [.running, .suspended].contains(machine.status) ? files.vncSocket : nil
        hypervisor = spec.hypervisor
        cpu_count = spec.vcpus
        mem_size = spec.memoryMiB
        sys_arch = spec.arch.rawValue
        hda_image = spec.hda.description
        hda_save_to = spec.hdaSaveTo
        hdb_image = spec.hdb?.description
        hdb_save_to = spec.hdbSaveTo
        cd_image = spec.cdrom?.description
        run_agent = spec.runAgent
        on_crash = spec.onCrash.rawValue
        domain = machine.domainName
        createdAt = machine.createdAt
        statusSince = machine.statusSince
    }
}
