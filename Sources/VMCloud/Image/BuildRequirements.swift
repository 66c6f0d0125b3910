import Foundation
import Glibc
import VMCloudCore

/// Checks, before anything is written, that the build can succeed on this host: root, the
/// tools (with the apt-get command that installs them) and free space in the work directory.
enum BuildRequirements {
    /// tool -> Debian package that provides it.
    static let tools: [(tool: String, package: String)] = [
        ("debootstrap", "debootstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
        ("chroot", "coreutils"),
        ("mount", "mount"),
    ]

    /// Resolved tool paths by name.
    static func check(options: ImageBuildOptions, log: BuildLog) throws -> [String: String] {
        let step = "check requirements"
        guard geteuid() == 0 else {
            throw ImageBuildError(step: step, reason: "must run as root (debootstrap, chroot and mount need it); try: sudo appliance image build ...")
        }
        var found: [String: String] = [:]
        var missing: [String] = []
        for (tool, package) in tools {
            if let path = ToolRunner.locate(tool) { found[tool] = path } else if !missing.contains(package) { missing.append(package) }
        }
        guard missing.isEmpty else {
            throw ImageBuildError(step: step, reason: "missing tools; install them with: apt-get install -y --no-install-recommends \(missing.joined(separator: " "))")
        }
        log.info("tools: " + tools.map { found[$0.tool]! }.joined(separator: " "))

        do {
            try FileManager.default.createDirectory(atPath: options.workDir, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: options.stateDir, withIntermediateDirectories: true)
        } catch {
            throw ImageBuildError(step: step, reason: "cannot create \(options.workDir) or \(options.stateDir): \(error)")
        }
        // A cached rootfs already holds most of what a build needs.
        let cached = FileManager.default.fileExists(atPath: options.rootfsStamp)
        let needed = cached ? options.sizeBytes * 2 : ImageBuildOptions.requiredFreeBytes
        let free: UInt64
        do { free = try FileSystemSpace(of: options.workDir).availableBytes } catch {
            throw ImageBuildError(step: step, reason: "cannot stat the file system of \(options.workDir): \(error)")
        }
        log.info(String(format: "free space in %@: %.1f GiB (need %.1f GiB)", options.workDir, Double(free) / 1_073_741_824, Double(needed) / 1_073_741_824))
        guard free >= needed else {
            throw ImageBuildError(step: step, reason: String(format: "not enough free space in %@: %.1f GiB free, the build needs %.1f GiB (choose another --work-dir or free space)", options.workDir, Double(free) / 1_073_741_824, Double(needed) / 1_073_741_824))
        }
        return found
    }
}
