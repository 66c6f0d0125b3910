import Foundation
import Testing
@testable import AudioRelay

@Suite(.serialized, .timeLimit(.minutes(1)))
struct PulseServerTests {
    @Test func startsPrivateDaemonWithRaisedFdLimitAndStopsIt() async throws {
        let daemon = try await TestDaemon.start()
        #expect(daemon.server.ownsDaemon)
        #expect(PulseServer.isAnswering(socketPath: daemon.socketPath))
        // The daemon.conf passed through PULSE_CONFIG must take effect (stock limit is 256).
        let log = try String(contentsOfFile: daemon.directory + "/daemon.conf", encoding: .utf8)
        #expect(log.contains("rlimit-nofile = 4096"))

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
