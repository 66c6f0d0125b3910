import Foundation
import Libvirt

/// Collects a client's events in the background so tests can wait for a matching one.
final class EventCollector: Sendable {
    private actor Recorder {
        var events: [LibvirtEvent] = []
        func append(_ event: LibvirtEvent) { events.append(event) }
    }

    private let recorder = Recorder()
    private let task: Task<Void, Never>

    init(_ stream: AsyncStream<LibvirtEvent>) {
        let recorder = self.recorder
        task = Task { for await event in stream { await recorder.append(event) } }
    }

    deinit { task.cancel() }

    var all: [LibvirtEvent] {
        get async { await recorder.events }
    }

    /// The first recorded event matching `predicate`, waiting up to `timeout`.
    func first(
        within timeout: Duration,
        where predicate: @Sendable (LibvirtEvent) -> Bool
    ) async -> LibvirtEvent? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let match = await recorder.events.first(where: predicate) { return match }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await recorder.events.first(where: predicate)
    }

    func lifecycle(
        _ kind: DomainLifecycleEvent, of domain: String, within timeout: Duration
    ) async -> LibvirtEvent? {
        await first(within: timeout) {
            if case .lifecycle(domain, _, kind, _) = $0 { return true }
            return false
        }
    }
}

enum TestNames {
    /// Unique per call: test:///default is shared by every connection in this process and the
    /// tests run in parallel.
    static func unique(_ base: String) -> String {
        "\(base)-\(UInt32.random(in: 0...UInt32.max))"
    }
}

/// A directory QEMU (running as libvirt-qemu) can create sockets and files in.
struct QemuAccessibleDirectory {
    let path: String

    init() throws {
        // Short path: unix socket paths are limited to 108 bytes.
        var template = Array("/tmp/lvt-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw TestFailure("mkdtemp failed: errno \(errno)")
        }
        path = String(cString: created)
        chmod(path, 0o755)
        try Self.chownToQemu(path)
    }

    static func chownToQemu(_ path: String) throws {
        guard let pw = getpwnam("libvirt-qemu") else {
            throw TestFailure("user libvirt-qemu does not exist (is libvirt-daemon-system installed?)")
        }
        guard chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid) == 0 else {
            throw TestFailure("chown \(path) to libvirt-qemu failed: errno \(errno)")
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program to completion and returns its exit status. posix_spawn + waitpid rather than
/// Foundation.Process, to control the child's signal mask and reap it ourselves.
@discardableResult
func runProgram(_ path: String, _ arguments: [String]) throws -> Int32 {
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // The child gets /dev/null for stdin/stdout so a daemon cannot hold the test's pipes.
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    // The child must not inherit this process's blocked signals (the Swift runtime's threads
    // block SIGTERM among others): a libvirtd started with SIGTERM blocked cannot be stopped.
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attr, &noSignals)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    posix_spawnattr_setsigdefault(&attr, &allSignals)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
    guard rc == 0 else { throw TestFailure("posix_spawn \(path) failed: \(rc)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw TestFailure("waitpid \(path) failed: errno \(errno)") }
    }
    // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
}
