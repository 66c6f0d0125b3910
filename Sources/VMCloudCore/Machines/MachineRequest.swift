import Foundation

/// The body of `POST /v1/vms`, with the seed's field names (`cpu_count`, `mem_size`,
/// `sys_arch`, `hda_image`, ...). `validated` turns it into a spec or a 400 naming the field.
package struct MachineRequest: Decodable {
    package var name: String
    package var hypervisor: String?
    package var cpu_count: Int?
    package var mem_size: Int?
    package var sys_arch: String?
    package var hda_image: String
    package var hda_save_to: String?
    package var hdb_image: String?
    package var hdb_save_to: String?
    package var cd_image: String?
    package var kernel_image: String?
    package var initrd_image: String?
    package var cmdline: String?
    package var run_agent: Bool?
    package var on_crash: String?
    package var stop_grace: Int?

    package init(name: String, hypervisor: String? = nil, cpu_count: Int? = nil, mem_size: Int? = nil, sys_arch: String? = nil, hda_image: String, hda_save_to: String? = nil, hdb_image: String? = nil, hdb_save_to: String? = nil, cd_image: String? = nil, kernel_image: String? = nil, initrd_image: String? = nil, cmdline: String? = nil, run_agent: Bool? = nil, on_crash: String? = nil, stop_grace: Int? = nil) {
        self.name = name
        self.hypervisor = hypervisor
        self.cpu_count = cpu_count
        self.mem_size = mem_size
        self.sys_arch = sys_arch
        self.hda_image = hda_image
        self.hda_save_to = hda_save_to
        self.hdb_image = hdb_image
        self.hdb_save_to = hdb_save_to
        self.cd_image = cd_image
        self.kernel_image = kernel_image
        self.initrd_image = initrd_image
        self.cmdline = cmdline
        self.run_agent = run_agent
        self.on_crash = on_crash
        self.stop_grace = stop_grace
    }

    /// What the host can run: `qemu` always; `kvm` only when the appliance's accelerator is KVM.
    package struct Host {
        package var kvmUsable: Bool
        package var images: ImageStore

        package init(kvmUsable: Bool, images: ImageStore) {
            self.kvmUsable = kvmUsable
            self.images = images
        }
    }

    /// `viewer`: the VM of a keyed viewer, whose name (`viewer.<project>.<kind>`) is reserved.
    package func validated(host: Host, viewer: Bool = false) throws -> (name: String, spec: MachineSpec) {
        let name = try MachineValidation.name(name)
        guard viewer == name.hasPrefix("viewer.") else {
            throw Refusal.invalid("names starting with 'viewer.' are reserved for keyed viewers")
        }
        guard !name.hasPrefix("resource.") else {
            throw Refusal.invalid("names starting with 'resource.' are reserved for smart proxy resources")
        }
        let hypervisor = try MachineValidation.hypervisor(hypervisor, kvmUsable: host.kvmUsable)
        guard let arch = MachineSpec.Arch(rawValue: sys_arch ?? "x86_64") else {
            throw Refusal.invalid("sys_arch must be x86_64 or i386, got '\((sys_arch ?? "").prefix(40))'")
        }
        let vcpus = cpu_count ?? 1
        guard (1...64).contains(vcpus) else { throw Refusal.invalid("cpu_count must be 1 to 64, got \(vcpus)") }
        let memory = mem_size ?? 512
        guard (64...1_048_576).contains(memory) else { throw Refusal.invalid("mem_size must be 64 to 1048576 MiB, got \(memory)") }
        guard let crash = MachineSpec.CrashPolicy(rawValue: on_crash ?? "restart") else {
            throw Refusal.invalid("on_crash must be restart or stop")
        }
        let grace = stop_grace ?? 10
        guard (0...600).contains(grace) else { throw Refusal.invalid("stop_grace must be 0 to 600 seconds") }
        if let cmdline {
            guard cmdline.utf8.count <= 1024, !cmdline.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw Refusal.invalid("cmdline must be at most 1024 bytes without control characters")
            }
        }
        let spec = MachineSpec(
            vcpus: vcpus, memoryMiB: memory, arch: arch, hypervisor: hypervisor,
            hda: try MachineValidation.image(hda_image, "hda_image", in: host.images),
            hdb: try hdb_image.flatMap(MachineValidation.nonEmpty).map { try MachineValidation.image($0, "hdb_image", in: host.images) },
            cdrom: try cd_image.flatMap(MachineValidation.nonEmpty).map { try MachineValidation.image($0, "cd_image", in: host.images) },
            kernel: try kernel_image.map { try MachineValidation.image($0, "kernel_image", in: host.images) },
            initrd: try initrd_image.map { try MachineValidation.image($0, "initrd_image", in: host.images) },
            cmdline: cmdline,
            hdaSaveTo: try MachineValidation.saveTarget(hda_save_to, "hda_save_to"),
            hdbSaveTo: try MachineValidation.saveTarget(hdb_save_to, "hdb_save_to"),
            runAgent: run_agent ?? true, onCrash: crash, stopGrace: grace, inputFiles: nil)
        guard spec.initrd == nil || spec.kernel != nil else { throw Refusal.invalid("initrd_image needs kernel_image") }
        guard spec.hdbSaveTo == nil || spec.hdb != nil else { throw Refusal.invalid("hdb_save_to needs hdb_image") }
        return (name, spec)
    }
}

/// The body of `PATCH /v1/vms/{ref}` (the seed's modify): save targets and the cdrom. A field
/// left out is unchanged; "" clears a save target or ejects the cdrom.
package struct MachineModification: Decodable {
    package var hda_save_to: String?
    package var hdb_save_to: String?
    package var cd_image: String?

    package init(hda_save_to: String? = nil, hdb_save_to: String? = nil, cd_image: String? = nil) {
        self.hda_save_to = hda_save_to
        self.hdb_save_to = hdb_save_to
        self.cd_image = cd_image
    }
}

/// Field checks shared by the generic VM and viewer requests.
package enum MachineValidation {
    package static func nonEmpty(_ value: String) -> String? { value.isEmpty ? nil : value }

    /// A letter, then letters, digits, `.`, `_`, `-`: at most 63. Never all digits, so a name
    /// cannot be mistaken for a pool VM's id, nor for a uuid (it has no 8-4-4-4-12 shape).
    package static func name(_ raw: String) throws -> String {
        let ok = raw.utf8.count <= 63 && raw.first.map { $0.isASCII && $0.isLetter } == true
            && raw.utf8.allSatisfy { isSafe($0) } && UUID(uuidString: raw) == nil
        guard ok else {
            throw Refusal.invalid("name must start with a letter and hold at most 63 letters, digits, '.', '_' or '-', got '\(raw.prefix(80))'")
        }
        return raw
    }

    package static func hypervisor(_ raw: String?, kvmUsable: Bool) throws -> String {
        switch raw ?? (kvmUsable ? "kvm" : "qemu") {
        case "qemu": return "qemu"
        case "kvm":
            guard kvmUsable else {
                throw Refusal(.unprocessable, code: "hypervisor_unavailable",
                               "hypervisor kvm is not usable on this host (the appliance runs guests under TCG; see --accel); use qemu")
            }
            return "kvm"
        case "xen", "vbox":
            throw Refusal(.unprocessable, code: "hypervisor_unavailable",
                           "hypervisor \(raw!) is not available on this host (only kvm and qemu through libvirt)")
        default:
            throw Refusal.invalid("hypervisor must be kvm, qemu, xen or vbox, got '\((raw ?? "").prefix(40))'")
        }
    }

    /// A URL, or a file that exists in the image store.
    package static func image(_ raw: String, _ field: String, in images: ImageStore) throws -> ImageReference {
        if raw.hasPrefix("http://") || raw.hasPrefix("https://") {
            guard raw.utf8.count <= 4096, let url = URLComponents(string: raw), url.host?.isEmpty == false,
                  !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == " " })
            else { throw Refusal.invalid("\(field) is not a valid http(s) URL") }
            return .url(raw)
        }
        let path = try storePath(raw, field)
        guard images.contains(path) else {
            throw Refusal.invalid("\(field): no file '\(path)' in the image store (\(images.root))")
        }
        return .stored(path)
    }

    /// nil for "" or absent (discard), else a path inside the image store.
    package static func saveTarget(_ raw: String?, _ field: String) throws -> String? {
        guard let raw, !raw.isEmpty else { return nil }
        return try storePath(raw, field)
    }

    /// A relative path inside the image store: up to 8 components of letters, digits, `.`,
    /// `_`, `-`, none of them `.` or `..`.
    package static func storePath(_ raw: String, _ field: String) throws -> String {
        let parts = raw.split(separator: "/", omittingEmptySubsequences: false)
        let ok = raw.utf8.count <= 512 && (1...8).contains(parts.count)
            && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." && $0.utf8.allSatisfy(isSafe) }
        guard ok else {
            throw Refusal.invalid("\(field) must be a relative path in the image store (letters, digits, '.', '_', '-', '/'; no '..'), got '\(raw.prefix(80))'")
        }
        return raw
    }

    private static func isSafe(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
}
