import Foundation
import Testing
@testable import AudioRelay

@Suite(.serialized, .timeLimit(.minutes(1)))
struct PulseServerTests {
    @Test func startsPrivateDaemonWithRaisedFdLimitAndStopsIt() async throws {
        let daemon = try await TestDaemon.start()
        #expect(daemon.server.ownsDaemon)
        #expect(PulseServer.isAnswering(socketPath: daemon.socketPath))
        // The daemon.conf passed through PULSE_CONFIG must take effect (stock limit is 256, and
        // without it the daemon keeps the limit it inherited): read the running daemon's own.
        let pid = try #require(daemon.server.daemonPID)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let openFiles = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let soft = openFiles.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.flatMap { Int($0) }
        #expect(soft == 4096, "\(openFiles)")

        // A second server object on the same socket reuses the running daemon.
        let second = PulseServer(socketPath: daemon.socketPath, runtimeDirectory: daemon.directory + "/second")
        #expect(try await second.start() == false)
        #expect(!second.ownsDaemon)

        await daemon.stop()
        #expect(!PulseServer.isAnswering(socketPath: daemon.socketPath))
    }

    @Test func unusableSocketPathsAreRefused() async {
        for path in ["/tmp/with space/native", "/tmp/quo'te", "/tmp/" + String(repeating: "x", count: 120)] {
            await #expect(throws: PulseError.self) { try await PulseServer(socketPath: path, runtimeDirectory: "/tmp/unused-pulse").start() }
        }
    }

    @Test func nothingAnswersOnAMissingSocket() {
        #expect(!PulseServer.isAnswering(socketPath: NSTemporaryDirectory() + "no-such-pulse-socket"))
    }
}
