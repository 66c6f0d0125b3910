import ChildProcess
import Foundation

package struct SubprocessError: Error, CustomStringConvertible {
    package let command: [String]
    package let status: Int32
    package let output: String

    package init(command: [String], status: Int32, output: String) {
        self.command = command
        self.status = status
        self.output = output
    }

    package var description: String {
        // One line, so that the log stays one line per event.
        let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        return "\(command.joined(separator: " ")) exited with \(status): \(lines.joined(separator: " | "))"
    }
}

/// Runs a short external tool (qemu-img, mkfs.ext4) without blocking a Swift concurrency
/// thread. Spawned with posix_spawn (ChildProcess), not Foundation's Process: under the
/// schemathesis run, with many sockets open, Process.run crashed the appliance in memcpy twice,
/// the second time with every spawn serialised.
package func runTool(_ executable: String, _ arguments: [String]) async throws -> String {
    let outputPath = NSTemporaryDirectory() + "vmcloud-tool-\(UUID().uuidString).out"
    defer { unlink(outputPath) }
    let child = try ChildProcess(
        executable: executable, arguments: arguments,
        environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"], outputPath: outputPath)
    let status = await child.exit()
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    guard status == 0 else { throw SubprocessError(command: [executable] + arguments, status: status, output: output) }
    return output
}
