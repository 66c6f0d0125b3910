import Foundation

/// A validated generic VM specification, stored as JSON in the machine row. Images are
/// references: a file in the image store (`<state-dir>/images/`) or an http(s) URL.
struct MachineSpec: Codable, Sendable, Equatable {
    enum Arch: String, Codable, Sendable { case x86_64, i386 }
    enum CrashPolicy: String, Codable, Sendable {
        /// Start the domain again on the same disks.
        case restart
        /// Treat it like a halt: save (if asked) and stay stopped.
        case stop
    }

    var vcpus: Int
    var memoryMiB: Int
    var arch: Arch
    /// `qemu` (TCG) or `kvm`.
    var hypervisor: String
    var hda: ImageReference
    var hdb: ImageReference?
    var cdrom: ImageReference?
    /// Direct kernel boot, for images without a boot loader (the test image).
    var kernel: ImageReference?
    var initrd: ImageReference?
    var cmdline: String?
    /// Image-store paths the disks are copied to when the VM halts (not on destroy); nil or
    /// empty: discarded.
    var hdaSaveTo: String?
    var hdbSaveTo: String?
    var runAgent: Bool
    var onCrash: CrashPolicy
    /// Seconds a stop waits for the guest to power off after the ACPI request before pulling
    /// the plug.
    var stopGrace: Int
    /// Files put on a small read-only disk (`vdc`, ext4, label `vmcloud-in`): name -> content.
    var inputFiles: [String: String]?
    /// The network of this VM when it is not the appliance's `--network` (a smart proxy
    /// resource's VM is on libvirt's NAT network so that the host can reach its port).
    var network: GuestNetwork? = nil
}

extension MachineSpec {
    /// A small TCG VM booting `hda` with nothing else attached: what benchmarks and tests on
    /// libvirt's test driver start.
    static func plain(hda: ImageReference, memoryMiB: Int = 64, runAgent: Bool = false, hdaSaveTo: String? = nil) -> MachineSpec {
        MachineSpec(vcpus: 1, memoryMiB: memoryMiB, arch: .x86_64, hypervisor: "qemu", hda: hda, hdb: nil, cdrom: nil,
                    kernel: nil, initrd: nil, cmdline: nil, hdaSaveTo: hdaSaveTo, hdbSaveTo: nil, runAgent: runAgent,
                    onCrash: .restart, stopGrace: 0, inputFiles: nil)
    }
}

/// Where an image comes from.
enum ImageReference: Codable, Sendable, Equatable, CustomStringConvertible {
    /// A file in the image store, by its relative path.
    case stored(String)
    case url(String)

    init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = raw.hasPrefix("http://") || raw.hasPrefix("https://") ? .url(raw) : .stored(raw)
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    var description: String {
        switch self {
        case .stored(let path): return path
        case .url(let url): return url
        }
    }
}
