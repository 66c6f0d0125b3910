import Foundation
import VMCloudCore

/// What `appliance image build` was asked to do, with paths already absolute.
package struct ImageBuildOptions: Sendable {
    package init(stateDir: String, workDir: String, agent: String?, initScript: String?, sizeBytes: UInt64, mirror: String?, compress: Bool) {
        (self.stateDir, self.workDir, self.agent, self.initScript) = (stateDir, workDir, agent, initScript)
        (self.sizeBytes, self.mirror, self.compress) = (sizeBytes, mirror, compress)
    }

    var stateDir: String
    var workDir: String
    /// nil: build the agent from the source tree.
    var agent: String?
    /// nil: the source tree's init.sh.
    var initScript: String?
    var sizeBytes: UInt64
    var mirror: String?
    var compress: Bool

    static let suite = "bookworm"
    static let defaultMirror = "http://deb.debian.org/debian"
    /// debootstrap + packages (~1.3 GB) + the raw disk + the qcow2, with some slack.
    static let requiredFreeBytes: UInt64 = 6 << 30

    var imageDir: String { stateDir + "/image" }
    var rootfs: String { workDir + "/rootfs" }
    /// Written only after debootstrap exited 0: its presence means the rootfs is reusable.
    var rootfsStamp: String { workDir + "/rootfs.debootstrap-done" }

    /// "3G", "3072M", "3221225472" -> bytes (binary units, as mkfs and qemu-img read them).
    package static func parseSize(_ text: String) throws -> UInt64 {
        struct BadSize: Error, CustomStringConvertible {
            let text: String
            var description: String { "invalid --size '\(text)': expected a number with an optional K, M, G or T suffix, e.g. 3G" }
        }
        var digits = text.uppercased()
        var shift: UInt64 = 0
        if let last = digits.last, let index = "KMGT".firstIndex(of: last) {
            shift = UInt64(10 * ("KMGT".distance(from: "KMGT".startIndex, to: index) + 1))
            digits.removeLast()
        }
        guard let number = UInt64(digits), number > 0, number <= (UInt64(1) << (50 - shift)) else {
            throw BadSize(text: text)
        }
        let bytes = number << shift
        guard bytes >= 1 << 30 else { throw BadSize(text: text + " (at least 1G)") }
        return bytes
    }
}

/// A failed build: which step, and why (a tool's exit code, a missing requirement).
package struct ImageBuildError: Error, CustomStringConvertible {
    let step: String
    let reason: String
    package var description: String { "step '\(step)' failed: \(reason)" }
}
