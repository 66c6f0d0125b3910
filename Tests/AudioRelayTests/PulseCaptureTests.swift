import ChildProcess
import Foundation
import Testing
@testable import AudioRelay

@Suite(.serialized, .timeLimit(.minutes(1)))
struct PulseCaptureTests {
    /// An idle sink (an idle VM) must still stream audio in ~10 ms pieces, not 2-second lumps,
    /// and the frame count must keep up with wall-clock time.
    @Test func silentSinkDeliversContinuously() async throws {
        try await TestDaemon.with { daemon in
            let connection = try PulseConnection(socketPath: daemon.socketPath)
            try await connection.connect()
            _ = try await connection.loadNullSink(name: "vm_idle")
            // An idle VM: QEMU keeps a playback stream open and writes silence, asking for a
            // large latency. (A sink with no input at all renders nothing, even to parec.)
            let player = try ChildProcess(
                executable: "/usr/bin/pacat",
                arguments: ["--server=unix:\(daemon.socketPath)", "--device=vm_idle", "--raw",
                            "--format=s16le", "--rate=48000", "--channels=2", "--latency-msec=2000", "/dev/zero"],
                environment: ["HOME": daemon.directory])
            defer { player.signal(SIGKILL) }
            try await Task.sleep(for: .milliseconds(300))
            let collector = Collector()
            let capture = PulseCapture(connection: connection, sinkName: "vm_idle") { collector.handle($0) }
            let started = ContinuousClock.now
            try await capture.start()
            try await Task.sleep(for: .milliseconds(1500))
            capture.stop()
            let elapsed = (ContinuousClock.now - started).seconds

            let arrivals = collector.arrivals
            #expect(arrivals.count > 50, "\(arrivals.count) chunks, ended \(collector.ended)")
            let gaps = zip(arrivals.dropFirst(), arrivals).map { ($0.at - $1.at).seconds }
            let p99 = percentile(gaps, 0.99)
            #expect(p99 < 0.1, "gap p99 \(p99 * 1000) ms")
            let medianFrames = percentile(arrivals.map { Double($0.chunk.frameCount) }, 0.5)
            #expect(medianFrames <= 48_000 * 0.03, "median chunk \(medianFrames) frames")
            let capturedSeconds = Double(arrivals.reduce(0) { $0 + $1.chunk.frameCount }) / 48_000
            // Audio keeps pace with wall-clock time while it flows.
            let window = arrivals.count > 1 ? (arrivals[arrivals.count - 1].at - arrivals[0].at).seconds : 0
            #expect(window > 0.5 && abs(capturedSeconds - window) < 0.2,
                    "captured \(capturedSeconds) s over \(window) s of arrivals, \(elapsed) s total")
            // Frame indices are contiguous and capture times move forward.
            var expected: UInt64 = 0
            for arrival in arrivals {
                #expect(arrival.chunk.frameIndex == expected)
                expected += UInt64(arrival.chunk.frameCount)
            }
            if let first = arrivals.first {
                #expect(first.chunk.captureTime <= first.at)
            }
            #expect(arrivals.allSatisfy { $0.chunk.pcm.allSatisfy { $0 == 0 } })
        }
    }

    /// Unloading the sink ends its capture with an event instead of leaving a dead stream.
    @Test func unloadingSinkEndsCapture() async throws {
        try await TestDaemon.with { daemon in
            let connection = try PulseConnection(socketPath: daemon.socketPath)
            try await connection.connect()
            let module = try await connection.loadNullSink(name: "vm_gone")
            let collector = Collector()
            let capture = PulseCapture(connection: connection, sinkName: "vm_gone") { collector.handle($0) }
            try await capture.start()
            try await connection.unloadModule(index: module)
            let deadline = ContinuousClock.now + .seconds(3)
            while collector.ended.isEmpty, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(collector.ended.count == 1)
            #expect(try await connection.sinkExists(name: "vm_gone") == false)
            capture.stop()
        }
    }

    @Test func captureOfMissingSinkFails() async throws {
        try await TestDaemon.with { daemon in
            let connection = try PulseConnection(socketPath: daemon.socketPath)
            try await connection.connect()
            let capture = PulseCapture(connection: connection, sinkName: "vm_missing") { _ in }
            await #expect(throws: PulseError.self) { try await capture.start() }
        }
    }
}
