import Foundation

/// A guest image directory: `disk.qcow2` (the read-only base every VM's overlay sits on) and,
/// for direct kernel boot, `vmlinuz` + `initrd.img` + `cmdline`. Both `images/test/build.sh`
/// and `appliance image build` produce this layout.
package struct GuestImage: Sendable, Equatable {
    package let directory: String
    package let disk: String
    package let kernel: String?
    package let initrd: String?
    package let cmdline: String?

    package init(directory: String, disk: String, kernel: String?, initrd: String?, cmdline: String?) {
        self.directory = directory
        self.disk = disk
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
    }

    package enum LoadError: Error, CustomStringConvertible {
        case missing(String)
        case incomplete(String)

        package var description: String {
            switch self {
            case .missing(let path):
                return "no guest image at \(path) (expected disk.qcow2 there; build one with `make image` or images/test/build.sh, or pass --image)"
            case .incomplete(let why): return "guest image is incomplete: \(why)"
            }
        }
    }

    package static func load(directory: String) throws -> GuestImage {
        let fm = FileManager.default
        // Absolute: QEMU resolves the overlay's backing path relative to the overlay, not to us.
        let dir = URL(fileURLWithPath: directory).standardizedFileURL.path
        let disk = dir + "/disk.qcow2"
        guard fm.fileExists(atPath: disk) else { throw LoadError.missing(dir) }
        func optional(_ name: String) -> String? {
            let path = dir + "/" + name
            return fm.fileExists(atPath: path) ? path : nil
        }
        let kernel = optional("vmlinuz")
        let initrd = optional("initrd.img")
        if initrd != nil && kernel == nil { throw LoadError.incomplete("initrd.img without vmlinuz in \(dir)") }
        let cmdline = try optional("cmdline").map {
            try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return GuestImage(directory: dir, disk: disk, kernel: kernel, initrd: initrd, cmdline: cmdline)
    }
}
