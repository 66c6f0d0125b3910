import Foundation

/// Makes a generic VM's disks before its domain starts (images fetched, qcow2 overlays on
/// them, the input disk) and saves or parks them when it halts.
package struct MachineDisks: Sendable {
    package let images: ImageStore
    package let qemuImg: String

    package init(images: ImageStore, qemuImg: String) {
        self.images = images
        self.qemuImg = qemuImg
    }

    /// The local file an image reference stands for, downloading a URL (once) with progress.
    package func resolve(_ reference: ImageReference, as name: String, files: MachineFiles,
                 progress: @escaping @Sendable (String) -> Void) async throws -> String {
        switch reference {
        case .stored(let path):
            let full = images.path(path)
            guard FileManager.default.fileExists(atPath: full) else { throw MachineError("image '\(path)' is no longer in the image store") }
            return full
        case .url(let url):
            let local = files.download(name)
            if FileManager.default.fileExists(atPath: local) { return local }
            progress("downloading \(name) from \(url)")
            try await ImageDownload.fetch(url, to: local) { received, total in
                let done = total.map { " of \(Self.mib($0)) (\(received * 100 / max($0, 1)) %)" } ?? ""
                progress("downloading \(name): \(Self.mib(received))\(done)")
            }
            return local
        }
    }

    /// A qcow2 overlay over `base` unless one exists (a restart keeps the VM's disk).
    package func ensureOverlay(_ path: String, base: String) async throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let format = try await imageFormat(base)
        _ = try await runTool(qemuImg, ["create", "-q", "-f", "qcow2", "-F", format, "-b", base, path])
    }

    /// The input disk: a small ext4 image (label `vmcloud-in`) holding `files`, made with
    /// `mkfs.ext4 -d` (no root, no loop device).
    package func makeInputDisk(_ files: [String: String], at path: String) async throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let staging = path + ".d"
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        for (name, content) in files {
            try Data(content.utf8).write(to: URL(fileURLWithPath: staging + "/" + name))
        }
        let bytes = files.values.reduce(0) { $0 + $1.utf8.count }
        let mib = max(4, bytes / (1 << 20) * 2 + 4)
        let partial = path + ".part"
        try? FileManager.default.removeItem(atPath: partial)
        _ = try await runTool("/sbin/mkfs.ext4", ["-q", "-F", "-L", "vmcloud-in", "-d", staging, partial, "\(mib)M"])
        try FileManager.default.moveItem(atPath: partial, toPath: path)
    }

    /// Copies an overlay with its base flattened into a standalone qcow2 at `target` (a path
    /// in the image store): written beside it, then renamed, so a failed try leaves nothing.
    package func save(_ overlay: String, to target: String) async throws {
        let destination = images.path(target)
        let partial = destination + ".part"
        try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do {
            _ = try await runTool(qemuImg, ["convert", "-q", "-O", "qcow2", overlay, partial])
            if FileManager.default.fileExists(atPath: destination) { try FileManager.default.removeItem(atPath: destination) }
            try FileManager.default.moveItem(atPath: partial, toPath: destination)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    private func imageFormat(_ path: String) async throws -> String {
        let info = try await runTool(qemuImg, ["info", "--output=json", path])
        guard let json = try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any],
              let format = json["format"] as? String, ["qcow2", "raw"].contains(format)
        else { throw MachineError("\(path) is not a qcow2 or raw disk image") }
        return format
    }

    package static func mib(_ bytes: Int64) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}

package struct MachineError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
