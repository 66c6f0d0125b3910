import Foundation

/// A guest image directory: `disk.qcow2` (the read-only base every VM's overlay sits on) and,
/// for direct kernel boot, `vmlinuz` + `initrd.img` + `cmdline`. Both `images/test/build.sh`
/// and `appliance image build` produce this layout.
struct GuestImage: Sendable, Equatable {
    let directory: String
    let disk: String
    let kernel: String?
    let initrd: String?
    let cmdline: String?

    enum LoadError: Error, CustomStringConvertible {
        case missing(String)
        case incomplete(String)

        var description: String {
            switch self {
            case .missing(let path):
                return "no guest image at \(path) (expected disk.qcow2 there; build one with `make image` or images/test/build.sh, or pass --image)"
            case .incomplete(let why): return "guest image is incomplete: \(why)"
            }
        }
    }

    static func load(directory: String) throws -> GuestImage {
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
