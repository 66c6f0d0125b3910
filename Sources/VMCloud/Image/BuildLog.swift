import Foundation
import VMCloudCore

/// Progress output of an image build: numbered steps with the time each took and the time
/// since the build started, so a slow step is obvious in the log.
final class BuildLog: @unchecked Sendable {
    private let start = Date()
    private let lock = NSLock()
    private var stepStart = Date()

    /// Elapsed seconds since the build began, as "12.3s".
    func elapsed(since date: Date? = nil) -> String {
        String(format: "%.1fs", Date().timeIntervalSince(date ?? start))
    }

    func step(_ title: String) {
        lock.withLock { stepStart = Date() }
        say("==> [\(elapsed())] \(title)")
    }

    func stepDone(_ detail: String = "") {
        let took = lock.withLock { elapsed(since: stepStart) }
        say("    done in \(took)\(detail.isEmpty ? "" : ": " + detail)")
    }

    func info(_ text: String) { say("    \(text)") }

    /// Unbuffered, whole lines: tool output streams through here from a reader thread.
    func say(_ line: String) {
        lock.withLock {
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }
}
