import Foundation

struct SubprocessError: Error, CustomStringConvertible {
    let command: [String]
    let status: Int32
    let output: String

    var description: String {
        // One line, so that the log stays one line per event.
        let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        return "\(command.joined(separator: " ")) exited with \(status): \(lines.joined(separator: " | "))"
    }
}

/// Foundation's Process.run is not safe from two threads at once on Linux: the fuzzer's
/// concurrent boots crashed the appliance in memcpy inside Process.run while another spawn was
/// reading the fd limit. Spawns take turns (each takes about a millisecond).
private let spawnLock = NSLock()

/// Runs a short external tool (qemu-img) without blocking a Swift concurrency thread: the
/// process's termination handler resumes the caller.
func runTool(_ executable: String, _ arguments: [String]) async throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        spawnLock.lock()
        defer { spawnLock.unlock() }
        do { try process.run() } catch { continuation.resume(throwing: error) }
    }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    guard status == 0 else { throw SubprocessError(command: [executable] + arguments, status: status, output: output) }
    return output
}
