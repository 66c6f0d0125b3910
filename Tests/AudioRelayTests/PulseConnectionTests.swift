import Foundation
import Testing
@testable import AudioRelay

@Suite(.serialized, .timeLimit(.minutes(1)))
struct PulseConnectionTests {
    @Test func loadAndUnloadNullSink() async throws {
        try await TestDaemon.with { daemon in
            let connection = try PulseConnection(socketPath: daemon.socketPath)
            try await connection.connect()
            #expect(connection.state == .ready)
            #expect(try await connection.sinkExists(name: "vm_test") == false)
            let module = try await connection.loadNullSink(name: "vm_test")
            #expect(try await connection.sinkExists(name: "vm_test"))
            #expect(try await connection.sinkNames().contains("vm_test"))
            try await connection.unloadModule(index: module)
            // The daemon acknowledges an unload before its deferred teardown runs: poll.
            var exists = true
            for _ in 0..<100 where exists {
                exists = try await connection.sinkExists(name: "vm_test")
                if exists { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(!exists)
            await #expect(throws: PulseError.self) { try await connection.unloadModule(index: module) }
        }
    }

    @Test func rejectsNamesThatCouldInjectModuleArguments() async throws {
        let connection = try PulseConnection(socketPath: "/nonexistent")
        await #expect(throws: PulseError.self) { _ = try await connection.loadNullSink(name: "a b=c") }
    }

    @Test func connectFailsWithoutDaemon() async throws {
        let connection = try PulseConnection(socketPath: NSTemporaryDirectory() + "no-such-pulse-socket")
        await #expect(throws: PulseError.self) { try await connection.connect() }
        guard case .failed = connection.state else {
            Issue.record("state \(connection.state)")
            return
        }
        await #expect(throws: PulseError.self) { _ = try await connection.sinkExists(name: "x") }
    }

    @Test func reportsDaemonLossAndReconnectsToARestartedDaemon() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try PulseConnection(socketPath: daemon.socketPath)
        try await connection.connect()
        _ = try await connection.loadNullSink(name: "vm_before")

        await daemon.server.stop()
        let deadline = ContinuousClock.now + .seconds(5)
        while connection.state == .ready, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard case .failed = connection.state else {
            Issue.record("state after daemon loss: \(connection.state)")
            await daemon.stop()
            return
        }

        try await daemon.server.start()
        try await connection.connect()
        #expect(connection.state == .ready)
        // The new daemon has none of the old sinks: the caller re-creates them.
        #expect(try await connection.sinkExists(name: "vm_before") == false)
        _ = try await connection.loadNullSink(name: "vm_before")
        #expect(try await connection.sinkExists(name: "vm_before"))
        await daemon.stop()
    }
}
