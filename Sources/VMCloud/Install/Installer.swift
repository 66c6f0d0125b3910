import Foundation
#if canImport(Glibc)
import Glibc
import VMCloudCore
#endif

/// Lays out the installed files; each step says what it did.
package struct Installer {
    package init(layout: InstallLayout, sourceBinary: String) {
        (self.layout, self.sourceBinary) = (layout, sourceBinary)
    }

    let layout: InstallLayout
    let sourceBinary: String
    /// Shipped files, found the way the running binary finds them (InstalledFiles).
    var shippedFiles = ["static/viewer.html", "static/audio.html", "static/monitor.html", "docs/openapi.yaml"]

    struct Failure: Error, CustomStringConvertible { let description: String }

    package func install() throws -> [String] {
        var done: [String] = []
        let fm = FileManager.default
        try copy(sourceBinary, to: layout.binary, mode: 0o755)
        done.append("installed \(layout.staged(layout.binary))")
        for file in shippedFiles {
            guard let source = InstalledFiles.locate(file) else { throw Failure(description: "cannot find \(file) beside \(sourceBinary)") }
            let target = layout.shareDir + "/" + (file as NSString).lastPathComponent
            if URL(fileURLWithPath: source).standardizedFileURL.path != URL(fileURLWithPath: layout.staged(target)).standardizedFileURL.path {
                try copy(source, to: target, mode: 0o644)
            }
        }
        done.append("installed \(shippedFiles.count) files in \(layout.staged(layout.shareDir))")
        try write(SystemdUnit.text(layout), to: layout.unit, mode: 0o644)
        done.append("installed \(layout.staged(layout.unit))")
        // An operator's edits survive a reinstall.
        if fm.fileExists(atPath: layout.staged(layout.config)) {
            done.append("kept \(layout.staged(layout.config))")
        } else {
            try write(DefaultConfig.text(layout), to: layout.config, mode: 0o644)
            done.append("installed \(layout.staged(layout.config))")
        }
        // 0755, not 0700: QEMU runs as libvirt-qemu and must pass through to the VM sockets
        // and disks (StateDirectory.prepare checks this); the secrets inside are 0600.
        let state = layout.staged(layout.stateDir)
        try fm.createDirectory(atPath: state, withIntermediateDirectories: true)
        chmod(state, 0o755)
        done.append("state directory \(state)")
        return done
    }

    /// systemctl only on a live systemd host and a real install; otherwise the commands to run.
    package func activate() -> [String] {
        let commands = [["daemon-reload"], ["enable", layout.unitName]]
        let live = FileManager.default.fileExists(atPath: "/run/systemd/system")
        guard live, layout.staged("/") == "/" else {
            return ["systemd is not running here (or --root is not /); on the host run:"]
                + commands.map { "  systemctl " + $0.joined(separator: " ") }
                + ["  systemctl start \(layout.unitName)   # after `appliance doctor` passes"]
        }
        var lines: [String] = []
        for args in commands {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/systemctl")
            process.arguments = args
            do {
                try process.run()
                process.waitUntilExit()
                lines.append("systemctl \(args.joined(separator: " ")): exit \(process.terminationStatus)")
            } catch {
                lines.append("systemctl \(args.joined(separator: " ")) failed: \(error)")
            }
        }
        lines.append("start it with: systemctl start \(layout.unitName)")
        return lines
    }

    private func copy(_ source: String, to path: String, mode: mode_t) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        try write(data, to: path, mode: mode)
    }

    private func write(_ text: String, to path: String, mode: mode_t) throws {
        try write(Data(text.utf8), to: path, mode: mode)
    }

    /// Atomic (a running binary is replaced, not overwritten in place), then the mode.
    private func write(_ data: Data, to path: String, mode: mode_t) throws {
        let target = layout.staged(path)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: target), options: .atomic)
        guard chmod(target, mode) == 0 else { throw Failure(description: "chmod \(target): \(String(cString: strerror(errno)))") }
    }
}
