import Foundation

/// A generic VM as the API shows it: the seed's status answer (`success`, `message`, `uuid`,
/// `name`, `status`, `vnc`) plus the desired state, the reason of a failure and the spec.
package struct MachineView: Encodable {
    package let success = true
    package let message: String
    package let uuid: String
    package let name: String
    package let status: String
    package let desired: String
    package let reason: String?
    package let ip: String?
    /// QEMU's VNC socket on the host, once the VM runs (not while its agent installs).
    package let vnc: String?
    package let hypervisor: String
    package let cpu_count: Int
    package let mem_size: Int
    package let sys_arch: String
    package let hda_image: String
    package let hda_save_to: String?
    package let hdb_image: String?
    package let hdb_save_to: String?
    package let cd_image: String?
    package let run_agent: Bool
    package let on_crash: String
    package let domain: String
    package let createdAt: Date
    package let statusSince: Date

    package init(_ machine: MachineRecord, files: MachineFiles) {
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
