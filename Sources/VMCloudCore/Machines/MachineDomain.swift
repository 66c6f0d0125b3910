import Foundation
import Libvirt

/// The libvirt domain of a generic VM, from its spec and the files its disks were made in.
package struct MachineDomain {
    /// Local paths of what the spec names, after downloads and overlays.
    package struct Disks {
        package var hda: String
        package var hdb: String?
        package var cdrom: String?
        package var kernel: String?
        package var initrd: String?
        package var input: String?

        package init(hda: String, hdb: String? = nil, cdrom: String? = nil, kernel: String? = nil, initrd: String? = nil, input: String? = nil) {
            self.hda = hda
            self.hdb = hdb
            self.cdrom = cdrom
            self.kernel = kernel
            self.initrd = initrd
            self.input = input
        }
    }

    package static func definition(_ machine: MachineRecord, disks: Disks, files: MachineFiles, network: GuestNetwork, instanceId: String) -> DomainDefinition {
        let spec = machine.spec
        var extra: [DomainDefinition.Disk] = []
        if let hdb = disks.hdb { extra.append(.init(path: hdb, target: "vdb")) }
        if let input = disks.input { extra.append(.init(path: input, format: "raw", target: "vdc", readOnly: true)) }
        return GuestDomain.definition(
            name: machine.domainName, owner: .machine(machine.id!), instanceId: instanceId,
            hardware: .init(type: spec.hypervisor == "kvm" ? .kvm : .qemu, memoryMiB: spec.memoryMiB, vcpus: spec.vcpus,
                            arch: spec.arch == .i386 ? "i686" : "x86_64"),
            disks: .init(hda: disks.hda, extra: extra, cdrom: .init(mediaPath: disks.cdrom),
                         kernelBoot: disks.kernel.map { .init(kernelPath: $0, initrdPath: disks.initrd, cmdline: spec.cmdline) }),
            files: .init(agentSocket: spec.runAgent ? files.agentSocket : nil, consoleLog: files.consoleLog, vncSocket: files.vncSocket),
            network: spec.network ?? network)
    }
}
