import Dispatch
import Foundation
import VMCloudCore

/// Runs the build's external tools (debootstrap, chroot, mkfs.ext4, qemu-img, swift) in the
/// foreground with Foundation's Process, streaming their output line by line with a prefix.
/// A tool silent for a while gets a "still running" line, so long steps show progress.
/// SIGINT/SIGTERM stop the running tool, so the caller's cleanup (unmounting) still runs.
final class ToolRunner: @unchecked Sendable {
    private let log: BuildLog
    private let lock = NSLock()
    private var running: Process?
    private var interrupted = false
    private var signalSources: [DispatchSourceSignal] = []
    static let heartbeatSeconds = 15.0

    init(log: BuildLog) {
        self.log = log
        for sig in [SIGINT, SIGTERM] {
            // Handled here instead of killing us: mounts must be undone first.
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.interrupt(sig) }
            source.resume()
            signalSources.append(source)
        }
    }

    var wasInterrupted: Bool { lock.withLock { interrupted } }

    private func interrupt(_ sig: Int32) {
        let process: Process? = lock.withLock {
            interrupted = true
            return running
        }
        log.say("    interrupted (signal \(sig)): stopping the running tool, then cleaning up")
        if let process, process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }

    /// Runs `executable arguments` and throws `ImageBuildError` naming `step` and the exit code
    /// unless it exits 0. Output lines are printed as "    [prefix] line". After an interrupt
    /// only cleanup (`evenIfInterrupted`) still runs.
    func run(
        step: String, prefix: String, _ executable: String, _ arguments: [String],
        environment: [String: String]? = nil, quiet: Bool = false, evenIfInterrupted: Bool = false
    ) throws {
        if wasInterrupted && !evenIfInterrupted { throw ImageBuildError(step: step, reason: "interrupted") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        if !quiet { log.info("$ \(([executable] + arguments).joined(separator: " "))") }
        do { try process.run() } catch {
            throw ImageBuildError(step: step, reason: "cannot start \(executable): \(error)")
        }
        lock.withLock { running = process }
        defer { lock.withLock { running = nil } }

        // Heartbeat: a timer that reports silence (mkfs.ext4 -d prints nothing for a minute).
        let started = Date()
        let lastOutput = LockedDate(Date())
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + Self.heartbeatSeconds, repeating: Self.heartbeatSeconds)
        timer.setEventHandler { [log] in
            if Date().timeIntervalSince(lastOutput.value) >= Self.heartbeatSeconds - 0.5 {
                log.say("    [\(prefix)] ... still running (\(Int(Date().timeIntervalSince(started)))s)")
            }
        }
        timer.resume()
        defer { timer.cancel() }

        // One merged pipe, read on this thread until EOF; \r counts as a line end so that
        // progress meters (qemu-img -p) come out as lines.
        let reader = pipe.fileHandleForReading
        var pending: [UInt8] = []
        func emit(_ bytes: ArraySlice<UInt8>) {
            let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if !line.isEmpty { log.say("    [\(prefix)] \(line)") }
        }
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            lastOutput.value = Date()
            pending.append(contentsOf: chunk)
            while let end = pending.firstIndex(where: { $0 == 10 || $0 == 13 }) {
                emit(pending[..<end])
                pending.removeSubrange(...end)
            }
        }
        if !pending.isEmpty { emit(pending[...]) }
        process.waitUntilExit()

        if wasInterrupted && !evenIfInterrupted { throw ImageBuildError(step: step, reason: "interrupted") }
        let status = process.terminationStatus
        if process.terminationReason == .uncaughtSignal {
            throw ImageBuildError(step: step, reason: "\((executable as NSString).lastPathComponent) was killed by signal \(status)")
        }
        guard status == 0 else {
            throw ImageBuildError(step: step, reason: "\((executable as NSString).lastPathComponent) exited with status \(status)")
        }
    }

    /// Runs a short tool and returns its output (for queries like `findmnt`); nil on failure.
    func capture(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Absolute path of a tool in the usual system directories, nil when not installed.
    static func locate(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for dir in dirs where !dir.isEmpty {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// A Date shared between the reader thread and the heartbeat timer.
private final class LockedDate: @unchecked Sendable {
    private let lock = NSLock()
    private var date: Date
    init(_ date: Date) { self.date = date }
    var value: Date {
        get { lock.withLock { date } }
        set { lock.withLock { date = newValue } }
    }
}
