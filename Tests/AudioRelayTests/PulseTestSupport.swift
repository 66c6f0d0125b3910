import Foundation
import Synchronization
import Testing
@testable import AudioRelay

/// A private PulseAudio daemon in a temp directory, so tests never touch a user's daemon.
struct TestDaemon {
    let directory: String
    let server: PulseServer
    var socketPath: String { server.socketPath }

    static func start() async throws -> TestDaemon {
        let directory = NSTemporaryDirectory() + "pa-test-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let server = PulseServer(socketPath: directory + "/native", runtimeDirectory: directory)
        try await server.start()
        return TestDaemon(directory: directory, server: server)
    }

    func stop() async {
        await server.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs the daemon for `body` and always stops it.
    static func with<T>(_ body: (TestDaemon) async throws -> T) async throws -> T {
        let daemon = try await start()
        do {
            let result = try await body(daemon)
            await daemon.stop()
            return result
        } catch {
            await daemon.stop()
            throw error
        }
    }
}

/// Collects capture events from the libpulse thread.
final class Collector: Sendable {
    struct Arrival: Sendable {
        let at: ContinuousClock.Instant
        let chunk: PulseCapture.Chunk
    }
    private let state = Mutex<(arrivals: [Arrival], ended: [String])>(([], []))

    func handle(_ event: PulseCapture.Event) {
        let now = ContinuousClock.now
        state.withLock {
            switch event {
            case .chunk(let c): $0.arrivals.append(Arrival(at: now, chunk: c))
            case .ended(let reason): $0.ended.append(reason)
            }
        }
    }

    var arrivals: [Arrival] { state.withLock { $0.arrivals } }
    var ended: [String] { state.withLock { $0.ended } }

    /// All captured samples of the left channel, as Double.
    var leftChannel: [Double] {
        var out: [Double] = []
        for arrival in arrivals {
            arrival.chunk.pcm.withUnsafeBytes { raw in
                let samples = raw.bindMemory(to: Int16.self)
                var i = 0
                while i + 1 < samples.count {
                    out.append(Double(Int16(littleEndian: samples[i])))
                    i += 2
                }
            }
        }
        return out
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
