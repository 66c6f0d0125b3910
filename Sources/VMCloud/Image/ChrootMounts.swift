import Foundation
#if canImport(Glibc)
import Glibc
import VMCloudCore
#endif

/// The kernel file systems a chroot needs for package scripts (update-initramfs, udev, dbus):
/// /proc, /sys, a private /dev with /dev/pts, and a tmpfs /run, as at a real boot. /dev is a
/// fresh tmpfs with only the basic nodes, never the host's /dev bound in: package scripts in
/// the chroot (udev's, for one) chgrp device nodes by the chroot's group ids, which once gave
/// the host's /dev/kvm a wrong group and broke libvirt. Unmounted by `unmountAll`,
/// which callers run on success and on failure; `unmountStale` cleans up after a killed build.
struct ChrootMounts {
    let root: String
    let tools: ToolRunner
    let log: BuildLog
    private(set) var mounted: [String] = []

    init(root: String, tools: ToolRunner, log: BuildLog) {
        self.root = root
        self.tools = tools
        self.log = log
    }

    mutating func mountAll(step: String) throws {
        let plan: [(target: String, args: [String])] = [
            ("/proc", ["-t", "proc", "proc"]),
            ("/sys", ["-t", "sysfs", "sysfs"]),
            ("/dev", ["-t", "tmpfs", "-o", "mode=0755,nosuid", "tmpfs"]),
            ("/dev/pts", ["-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts"]),
            ("/dev/shm", ["-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs"]),
            ("/run", ["-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs"]),
        ]
        for (target, args) in plan {
            let path = root + target
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try tools.run(step: step, prefix: "mount", "/bin/mount", args + [path], quiet: true)
            mounted.append(path)
            if target == "/dev" { try makeDeviceNodes(in: path) }
        }
        log.info("mounted /proc /sys /dev (private) /dev/pts /dev/shm /run in \(root)")
        // The image's /etc/resolv.conf points at systemd-resolved's stub in /run (a tmpfs at
        // boot, here too): give the chroot the host's resolvers there so apt can resolve.
        let resolveDir = root + "/run/systemd/resolve"
        try FileManager.default.createDirectory(atPath: resolveDir, withIntermediateDirectories: true)
        let hostResolv = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? "nameserver 10.0.2.3\n"
        for name in ["stub-resolv.conf", "resolv.conf"] {
            try hostResolv.write(toFile: resolveDir + "/" + name, atomically: true, encoding: .utf8)
        }
    }

    /// The nodes package scripts expect (character devices with their fixed numbers).
    private func makeDeviceNodes(in dev: String) throws {
        let nodes: [(String, UInt32, UInt32)] = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        for (name, major, minor) in nodes {
            guard mknod(dev + "/" + name, S_IFCHR | 0o666, Self.deviceNumber(major, minor)) == 0 else {
                throw ImageBuildError(step: "chroot", reason: "mknod \(dev)/\(name) failed: \(String(cString: strerror(errno)))")
            }
            chmod(dev + "/" + name, 0o666)
        }
        try FileManager.default.createSymbolicLink(atPath: dev + "/ptmx", withDestinationPath: "pts/ptmx")
        for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            try FileManager.default.createSymbolicLink(atPath: dev + "/" + link, withDestinationPath: target)
        }
    }

    /// glibc's makedev (a macro Swift cannot see), for the small numbers used here.
    private static func deviceNumber(_ major: UInt32, _ minor: UInt32) -> dev_t {
        dev_t((major & 0xfff) << 8 | (minor & 0xff)) | dev_t(minor & ~0xff) << 12 | dev_t(major & ~0xfff) << 32
    }

    /// Reverse order; a busy mount is detached lazily so the build never leaves /dev bound.
    mutating func unmountAll() {
        for path in mounted.reversed() { Self.unmount(path, tools: tools, log: log) }
        mounted.removeAll()
    }

    /// Mount points at or below `root` left by an earlier, killed build (deepest first).
    static func unmountStale(under root: String, tools: ToolRunner, log: BuildLog) {
        guard let table = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return }
        let stale = table.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let point = fields[1].replacingOccurrences(of: "\\040", with: " ")
            return point == root || point.hasPrefix(root + "/") ? point : nil
        }
        for path in stale.sorted(by: { $0.count > $1.count }) {
            log.info("unmounting stale \(path)")
            unmount(path, tools: tools, log: log)
        }
    }

    private static func unmount(_ path: String, tools: ToolRunner, log: BuildLog) {
        if (try? tools.run(step: "unmount", prefix: "umount", "/bin/umount", [path], quiet: true, evenIfInterrupted: true)) == nil {
            log.info("umount \(path) failed; detaching it lazily")
            try? tools.run(step: "unmount", prefix: "umount", "/bin/umount", ["-l", path], quiet: true, evenIfInterrupted: true)
        }
    }
}
