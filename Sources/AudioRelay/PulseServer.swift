import ChildProcess
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Makes sure a PulseAudio daemon answers on one unix socket, starting a private one if none does.
///
/// The relay does not use a desktop's session daemon: VM audio goes to a daemon that exists only
/// for the appliance, reachable at a known socket path so libvirt's `<audio type='pulseaudio'
/// serverName=…>` and the relay meet there. The daemon runs as a child process (never daemonized)
/// so it is stopped with the appliance and its stderr lands in a log file next to the socket.
///
/// Quirks handled here, all measured as root on Debian 12 / PulseAudio 16.1:
/// - as root without `--system` the daemon only warns ("not intended to be run as root") and
///   runs; `--system` is not used because it insists on the `pulse` user and system paths;
/// - there is no `--rlimit-nofile` command-line option; the limit (stock 256, too low for 32 VMs
///   plus their listeners: `accept(): Too many open files`) is set in a private `daemon.conf`
///   passed through the `PULSE_CONFIG` environment variable;
/// - `HOME`, `PULSE_RUNTIME_PATH` and `PULSE_STATE_PATH` point into the runtime directory so the
///   daemon's cookie, pid and state files never touch `/root` or another daemon's files;
/// - `-n` skips `default.pa` (no hardware probing, no D-Bus modules); the D-Bus warnings in the
///   log are harmless.
public final class PulseServer: Sendable {
    /// The unix socket clients connect to (`unix:` + this path is the libpulse server string).
    public let socketPath: String
    /// Where the daemon keeps its config, runtime and state files and its log.
    public let runtimeDirectory: String
    /// The daemon's open-file limit; each VM playback stream and each listener costs descriptors.
    public let maxOpenFiles: Int

    private let child = Mutex<ChildProcess?>(nil)

    /// - Parameters:
    ///   - socketPath: must be shorter than 108 bytes (the `sockaddr_un` limit).
    ///   - runtimeDirectory: created if missing; private to this daemon.
    public init(socketPath: String, runtimeDirectory: String, maxOpenFiles: Int = 4096) {
        self.socketPath = socketPath
        self.runtimeDirectory = runtimeDirectory
        self.maxOpenFiles = maxOpenFiles
    }

    deinit {
        // Last resort so a forgotten server does not outlive its owner; `stop()` waits properly.
        child.withLock { $0 }?.signal(SIGTERM)
    }

    /// The libpulse server string for `socketPath`.
    public var serverString: String { "unix:\(socketPath)" }

    /// Whether this object started the daemon that is currently running (false when another
    /// daemon already answered on the socket).
    public var ownsDaemon: Bool { child.withLock { $0?.isRunning ?? false } }

    /// The pid of the daemon this object started, while it runs.
    public var daemonPID: Int32? { child.withLock { c in c.flatMap { $0.isRunning ? $0.pid : nil } } }

    /// Returns once something answers on the socket. Starts a daemon only if nothing does, so a
    /// daemon left running (or started by an operator) is reused. Safe to call again after
    /// PulseAudio died: it starts a fresh one.
    ///
    /// - Returns: true if this call started a daemon.
    @discardableResult
    public func start(timeout: Duration = .seconds(10)) async throws -> Bool {
        // The path goes into a module argument (split on whitespace, quotes interpreted) and
        // into a sockaddr_un (107 bytes at most).
        guard socketPath.utf8.count < 108, !socketPath.contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "'" }) else {
            throw PulseError.invalidName("socket path \(socketPath.debugDescription): at most 107 bytes, no spaces or quotes")
        }
        if Self.isAnswering(socketPath: socketPath) { return false }
        let executable = try Self.findExecutable()
        let process = try spawn(executable: executable)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if Self.isAnswering(socketPath: socketPath) { return true }
            if let status = process.exitStatus() {
                throw PulseError.daemonFailed(
                    "exited with status \(status) before answering on \(socketPath); log: \(logTail())")
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        process.signal(SIGTERM)
        throw PulseError.daemonFailed("no answer on \(socketPath) within \(timeout); log: \(logTail())")
    }

    /// Stops the daemon this object started (SIGTERM, then SIGKILL after `grace`); does nothing
    /// if the daemon was not ours.
    public func stop(grace: Duration = .seconds(3)) async {
        guard let process = child.withLock({ c -> ChildProcess? in
            defer { c = nil }
            return c
        }) else { return }
        process.signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        process.signal(SIGKILL)
        _ = await process.exit()
    }

    /// Path of the daemon's stderr log.
    public var logPath: String { runtimeDirectory + "/pulseaudio.log" }

    private func spawn(executable: String) throws -> ChildProcess {
        let fm = FileManager.default
        // QEMU (the libvirt-qemu user) connects to the socket: its directory must be searchable
        // (made first, so the private directories below do not make it private as a parent).
        let socketDirectory = (socketPath as NSString).deletingLastPathComponent
        try fm.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        chmod(socketDirectory, 0o755)
        for dir in [runtimeDirectory, runtimeDirectory + "/run", runtimeDirectory + "/state"] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let conf = runtimeDirectory + "/daemon.conf"
        try "rlimit-nofile = \(maxOpenFiles)\n".write(toFile: conf, atomically: true, encoding: .utf8)

        let arguments = [
            "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
            "--log-target=stderr",
            // The CPU-limit watchdog kills the daemon after sustained load; a busy host with many
            // VMs must slow down rather than lose all audio.
            "--no-cpu-limit=yes",
            "--load=module-native-protocol-unix socket=\(socketPath) auth-anonymous=1",
            // A default sink so a stray client never finds "no sink"; VM sinks are loaded per VM.
            "--load=module-always-sink",
        ]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = runtimeDirectory
        env["PULSE_CONFIG"] = conf
        env["PULSE_RUNTIME_PATH"] = runtimeDirectory + "/run"
        env["PULSE_STATE_PATH"] = runtimeDirectory + "/state"
        env["XDG_CONFIG_HOME"] = runtimeDirectory + "/config"
        env.removeValue(forKey: "PULSE_SERVER")
        env.removeValue(forKey: "DBUS_SESSION_BUS_ADDRESS")
        let process: ChildProcess
        do {
            process = try ChildProcess(executable: executable, arguments: arguments, environment: env, outputPath: logPath)
        } catch {
            throw PulseError.daemonFailed("\(error)")
        }
        child.withLock { $0 = process }
        return process
    }

    private func logTail() -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") }
            .suffix(8).joined(separator: " | ")
    }

    /// Finds `pulseaudio` on `PATH` (plus the Debian location, for services started with a bare
    /// environment).
    static func findExecutable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
            let candidate = dir + "/pulseaudio"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw PulseError.daemonMissing(
            "no `pulseaudio` executable on PATH; install it with `apt-get install pulseaudio pulseaudio-utils` (and libpulse-dev to build)")
    }

    /// Whether a server accepts connections on the unix socket. A plain `connect()`, not a
    /// libpulse handshake: cheap, never blocks (a unix-socket connect completes or is refused at
    /// once) and tells a stale socket file from a live daemon.
    public static func isAnswering(socketPath: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }
}
