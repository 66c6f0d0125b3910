import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Foundation's `Process` learns that a child exited through a socket the child inherits; a
/// child that passes its descriptors on (PulseAudio clients hand out memfds and sockets) can
/// keep that socket open, and then `isRunning` stays true and `terminationHandler` never runs
/// for a process that is long gone (seen here as `paplay` zombies and a hanging daemon stop).
/// `waitpid` on the pid has no such failure mode. The child inherits no descriptors but its
/// standard streams.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// The exit status once reaped (a pid is reaped exactly once).
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` and exactly `environment`; stdin is /dev/null,
    /// stdout and stderr go to `outputPath` (appended; /dev/null if nil).
    public init(executable: String, arguments: [String], environment: [String: String], outputPath: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        Self.markInheritedDescriptorsCloseOnExec()

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard rc == 0 else {
            throw SpawnError(executable: executable, reason: String(cString: strerror(rc)))
        }
        self.pid = pid
    }

    deinit {
        if exitStatus() == nil {
            kill(pid, SIGKILL)
            _ = waitFor()
        }
    }

    /// The exit status if the process has ended (reaping it), nil while it runs.
    public func exitStatus() -> Int32? {
        status.withLock { status in
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid { status = Self.decode(raw) }
            }
            return status
        }
    }

    public var isRunning: Bool { exitStatus() == nil }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Blocks the calling thread until the process ends; only for threads that may block.
    public func waitFor() -> Int32 {
        if let status = exitStatus() { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        let decoded = Self.decode(raw)
        status.withLock { $0 = decoded }
        return decoded
    }

    /// Waits for the end of the process without blocking a thread (polls every 10 ms).
    public func exit() async -> Int32 {
        while true {
            if let status = exitStatus() { return status }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// A long-lived child must not hold our descriptors: sockets, and above all the one through
    /// which our own parent (e.g. Foundation's `Process` in a test) sees us exit. Descriptors
    /// opened by Swift, NIO and libpulse are close-on-exec already; inherited ones are not.
    /// (`posix_spawn_file_actions_addclosefrom_np` is not visible to Swift here.)
    private static func markInheritedDescriptorsCloseOnExec() {
        guard let dir = opendir("/proc/self/fd") else { return }
        defer { closedir(dir) }
        let own = dirfd(dir)
        while let entry = readdir(dir) {
            // Never copy `entry.pointee`: the kernel's record is only as long as its name, and a
            // whole `dirent` read at the end of readdir's buffer ran off the page (a crash seen
            // with many descriptors open).
            let namePointer = UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            let name = String(cString: namePointer.assumingMemoryBound(to: CChar.self))
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Exit code, or 128 + signal number for a killed process (as a shell reports it).
    private static func decode(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }
}

/// posix_spawn refused to start the program (missing, not executable, out of resources).
public struct SpawnError: Error, CustomStringConvertible {
    public let executable: String
    public let reason: String

    public var description: String { "could not start \(executable): \(reason)" }
}
