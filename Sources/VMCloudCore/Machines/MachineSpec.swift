import Foundation

/// A validated generic VM specification, stored as JSON in the machine row. Images are
/// references: a file in the image store (`<state-dir>/images/`) or an http(s) URL.
package struct MachineSpec: Codable, Sendable, Equatable {
    package enum Arch: String, Codable, Sendable { case x86_64, i386 }
    package enum CrashPolicy: String, Codable, Sendable {
        /// Start the domain again on the same disks.
        case restart
        /// Treat it like a halt: save (if asked) and stay stopped.
        case stop
    }

    package var vcpus: Int
    package var memoryMiB: Int
    package var arch: Arch
    /// `qemu` (TCG) or `kvm`.
    package var hypervisor: String
    package var hda: ImageReference
    package var hdb: ImageReference?
    package var cdrom: ImageReference?
    /// Direct kernel boot, for images without a boot loader (the test image).
    package var kernel: ImageReference?
    package var initrd: ImageReference?
    package var cmdline: String?
    /// Image-store paths the disks are copied to when the VM halts (not on destroy); nil or
    /// empty: discarded.
    package var hdaSaveTo: String?
    package var hdbSaveTo: String?
    package var runAgent: Bool
    package var onCrash: CrashPolicy
    /// Seconds a stop waits for the guest to power off after the ACPI request before pulling
    /// the plug.
    package var stopGrace: Int
    /// Files put on a small read-only disk (`vdc`, ext4, label `vmcloud-in`): name -> content.
    package var inputFiles: [String: String]?
    /// The network of this VM when it is not the appliance's `--network` (a smart proxy
    /// resource's VM is on libvirt's NAT network so that the host can reach its port).
    package var network: GuestNetwork? = nil
    /// A keyed viewer's service port: the one guest port its proxy path forwards to.
    package var viewerPort: Int? = nil

    package init(vcpus: Int, memoryMiB: Int, arch: Arch, hypervisor: String, hda: ImageReference, hdb: ImageReference? = nil, cdrom: ImageReference? = nil, kernel: ImageReference? = nil, initrd: ImageReference? = nil, cmdline: String? = nil, hdaSaveTo: String? = nil, hdbSaveTo: String? = nil, runAgent: Bool, onCrash: CrashPolicy, stopGrace: Int, inputFiles: [String: String]? = nil, network: GuestNetwork? = nil) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.arch = arch
        self.hypervisor = hypervisor
        self.hda = hda
        self.hdb = hdb
        self.cdrom = cdrom
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.hdaSaveTo = hdaSaveTo
        self.hdbSaveTo = hdbSaveTo
        self.runAgent = runAgent
        self.onCrash = onCrash
        self.stopGrace = stopGrace
        self.inputFiles = inputFiles
        self.network = network
    }
}

extension MachineSpec {
    /// A small TCG VM booting `hda` with nothing else attached: what benchmarks and tests on
    /// libvirt's test driver start.
    package static func plain(hda: ImageReference, memoryMiB: Int = 64, runAgent: Bool = false, hdaSaveTo: String? = nil) -> MachineSpec {
        MachineSpec(vcpus: 1, memoryMiB: memoryMiB, arch: .x86_64, hypervisor: "qemu", hda: hda, hdb: nil, cdrom: nil,
                    kernel: nil, initrd: nil, cmdline: nil, hdaSaveTo: hdaSaveTo, hdbSaveTo: nil, runAgent: runAgent,
                    onCrash: .restart, stopGrace: 0, inputFiles: nil)
    }
}

/// Where an image comes from.
package enum ImageReference: Codable, Sendable, Equatable, CustomStringConvertible {
    /// A file in the image store, by its relative path.
    case stored(String)
    case url(String)

    package init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = raw.hasPrefix("http://") || raw.hasPrefix("https://") ? .url(raw) : .stored(raw)
    }

    package func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    package var description: String {
        switch self {
        case .stored(let path): return path
        case .url(let url): return url
        }
    }
}
