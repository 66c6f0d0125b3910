import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Notices a guest's QEMU dying before libvirt reports it: on a loaded host libvirt's lifecycle
/// event for a killed QEMU arrives about 1-2 s late (measured: 1.8 s under TCG), while the
/// process is gone at once. libvirt's qemu driver writes each running domain's QEMU pid to
/// `<runDirectory>/<domain>.pid`; a pid file whose process no longer exists is a dead guest.
package struct QemuLiveness: Sendable {
    package var runDirectory = "/run/libvirt/qemu"

    package init(runDirectory: String = "/run/libvirt/qemu") {
        self.runDirectory = runDirectory
    }

    /// The domains named `<prefix>...` whose pid file names a dead process: one listing of the
    /// run directory, no store read, so it can run every 200 ms.
    package func deadDomains(prefix: String) -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        return Set(names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".pid") }.map { String($0.dropLast(4)) }.filter(isDead))
    }

    /// True only when the pid file exists and names no live process (never for domains of
    /// other drivers, which have no pid file).
    package func isDead(domain: String) -> Bool {
        guard let text = try? String(contentsOfFile: "\(runDirectory)/\(domain).pid", encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
        else { return false }
        if kill(pid, 0) == -1 && errno == ESRCH { return true }
        // A killed QEMU stays a zombie until its parent (init, as QEMU daemonizes) reaps it.
        return Self.isZombie(pid)
    }

    /// `/proc/<pid>/stat` says state Z (the field after the parenthesized command name).
    package static func isZombie(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
