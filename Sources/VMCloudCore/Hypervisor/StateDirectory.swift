import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The appliance's state directory: the SQLite store, VM overlays, and the run directory where
/// QEMU binds each VM's agent and VNC sockets. QEMU runs as an unprivileged user (libvirt-qemu
/// on Debian), so every directory on those paths must let that user through.
package struct StateDirectory: Sendable {
    package let root: String

    package init(root: String) {
        self.root = root
    }
    package var database: String { root + "/appliance.sqlite" }
    package var vmsDir: String { root + "/vms" }
    package var runDir: String { root + "/run" }
    package var defaultImage: String { root + "/image" }
    /// Captured screenshots and pages, by content hash.
    package var blobsDir: String { root + "/blobs" }
    /// The image store generic VMs boot from and save to.
    package var imagesDir: String { root + "/images" }
    /// The key viewer tokens are derived from (mode 0600).
    package var viewerSecret: String { root + "/viewer-secret" }
    /// The admin client's key, written once at first start (mode 0600).
    package var adminKey: String { root + "/admin.key" }
    /// The private PulseAudio daemon: its socket (QEMU and the relay connect there) and files.
    package var audioSocket: String { root + "/audio/native" }
    package var audioRuntime: String { root + "/audio/pulse" }

    package struct AccessError: Error, CustomStringConvertible {
        package let path: String

        package init(path: String) {
            self.path = path
        }
        package var description: String {
            "\(path) is not searchable by other users (mode lacks o+x); QEMU runs as libvirt-qemu and must reach the VM sockets and disks below it: chmod o+x \(path) or choose another --state-dir"
        }
    }

    /// Creates the directories with the modes QEMU needs and checks every ancestor.
    package func prepare(qemuUser: String = "libvirt-qemu") throws {
        let fm = FileManager.default
        for dir in [root, vmsDir, runDir, imagesDir] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o755)
        }
        if let user = getpwnam(qemuUser) {
            // QEMU creates the sockets (it binds them), so it needs to write here.
            chown(runDir, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        var path = (root as NSString).standardizingPath
        while path != "/" && !path.isEmpty {
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & S_IXOTH == 0 { throw AccessError(path: path) }
            path = (path as NSString).deletingLastPathComponent
        }
    }

    package func overlay(vm id: Int64) -> String { "\(vmsDir)/vm\(id).qcow2" }
    package func agentSocket(vm id: Int64) -> String { "\(runDir)/vm\(id).agent.sock" }
    package func vncSocket(vm id: Int64) -> String { "\(runDir)/vm\(id).vnc.sock" }
    package func consoleLog(vm id: Int64) -> String { "\(runDir)/vm\(id).console.log" }
}
