import AudioTestSupport
import Foundation
import Logging
import OggOpus
import Synchronization
import Testing
@testable import AudioRelay

/// The relay against a real PulseAudio daemon: tones played with `paplay` into a VM's sink,
/// captured through libpulse, encoded by libopus and decoded again by `opusdec`.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct AudioChannelTests {
    /// Collects a listener's packets until told to stop.
    final class Listener: Sendable {
        private final class Box: Sendable { let packets = Mutex<[AudioPacket]>([]) }
        private let received = Box()
        private let task: Task<Void, Never>

        init(_ packets: AudioChannel.Packets) {
            let received = received
            task = Task {
                for await packet in packets { received.packets.withLock { $0.append(packet) } }
            }
        }

        var packets: [AudioPacket] { received.packets.withLock { $0 } }
        func stop() { task.cancel() }
    }

    static func relay(_ daemon: TestDaemon) async throws -> AudioRelay {
        let relay = try AudioRelay(socketPath: daemon.socketPath, runtimeDirectory: daemon.directory, logger: Logger(label: "test"))
        try await relay.start()
        return relay
    }

    static func paplay(_ daemon: TestDaemon, sink: String, wav: Data) async throws {
        let status = try await AudioTestSupport.paplay(wav: wav, socketPath: daemon.socketPath, sink: sink, directory: daemon.directory)
        #expect(status == 0, "paplay exited \(status)")
    }

    /// Muxes a listener's packets as one Ogg/Opus file and decodes it with opusdec.
    static func decode(_ packets: [AudioPacket], preSkip: Int) throws -> DecodedWAV {
        let stream = try OggOpusStream(preSkip: preSkip)
        var file = stream.headerPages
        for packet in packets { file += try stream.pages(for: packet.opus) }
        file += stream.finish()
        return try decodeWithOpusdec(file).wav
    }

    @Test func toneReachesListenersAsOpus() async throws {
        try await TestDaemon.with { daemon in
            let relay = try await Self.relay(daemon)
            try await relay.ensureSink("vm_tone")
            let channel = try #require(relay.channel(for: "vm_tone"))
            #expect(!channel.isCapturing)
            // A deep queue: in a full test run other suites can keep this process's cooperative
            // threads busy for seconds; skipping is tested below.
            let listener = Listener(try channel.listen(queuePackets: 2_000).packets)
            #expect(channel.isCapturing)
            try await Task.sleep(for: .milliseconds(300))
            try await Self.paplay(daemon, sink: "vm_tone", wav: sineWAV(frequency: 1000, seconds: 1.5))
            try await Task.sleep(for: .milliseconds(300))
            listener.stop()
            try await Task.sleep(for: .milliseconds(100))
            #expect(channel.listenerCount == 0)
            #expect(!channel.isCapturing, "capture stops with the last listener")

            let packets = listener.packets
            // Contiguous sequence numbers and strictly increasing capture times.
            #expect(zip(packets, packets.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 && $1.captureMicros > $0.captureMicros })
            let wav = try Self.decode(packets, preSkip: channel.preSkip)
            #expect(dominantFrequency(wav) == 1000)
            let tone = toneSeconds(wav, frequency: 1000)
            #expect(abs(tone - 1.5) < 0.1, "tone lasted \(tone) s of \(wav.seconds) s decoded")
            // Silence around the tone was streamed too: the stream never stalls.
            #expect(wav.seconds > 1.8)
            await relay.shutdown()
        }
    }

    /// Ten listeners keep receiving every packet while an eleventh never reads: it skips
    /// packets from a bounded queue and delays no one.
    @Test func stalledListenerDoesNotHoldUpTheOthers() async throws {
        try await TestDaemon.with { daemon in
            let relay = try await Self.relay(daemon)
            try await relay.ensureSink("vm_many")
            let channel = try #require(relay.channel(for: "vm_many"))
            // The ten have deep queues so that a busy test machine cannot make them skip; the
            // stalled one has the default bounded queue.
            let listeners = try (0..<10).map { _ in Listener(try channel.listen(queuePackets: 2_000).packets) }
            let stalled = try channel.listen().packets  // never iterated
            try await Task.sleep(for: .seconds(2))
            listeners.forEach { $0.stop() }
            let encoded = channel.encodedPackets
            #expect(encoded >= 150, "encoded \(encoded), capturing \(channel.isCapturing)")
            for listener in listeners {
                let packets = listener.packets
                // Continuous: at least 1.5 s of 10 ms packets with no sequence gap.
                #expect(packets.count >= 150, "\(packets.count) packets")
                #expect(zip(packets, packets.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 })
            }
            #expect(channel.skippedPackets >= encoded - AudioChannel.listenerQueuePackets - 5,
                    "the stalled listener skipped \(channel.skippedPackets) of \(encoded)")
            var queued = 0
            for await _ in stalled {
                queued += 1
                if queued == AudioChannel.listenerQueuePackets { break }
            }
            #expect(queued == AudioChannel.listenerQueuePackets)
            // The VM's listener limit: fill up to it (the stopped ten have left), then one more
            // is refused.
            try await Task.sleep(for: .milliseconds(200))
            let more = try (channel.listenerCount..<AudioChannel.maxListeners).map { _ in try channel.listen() }
            #expect(throws: AudioChannel.ListenerLimitReached.self) { try channel.listen() }
            more.forEach { $0.cancel() }
            await relay.shutdown()
        }
    }

    /// Removing a VM's sink ends its listeners' streams.
    @Test func removingTheSinkEndsListeners() async throws {
        try await TestDaemon.with { daemon in
            let relay = try await Self.relay(daemon)
            try await relay.ensureSink("vm_bye")
            let channel = try #require(relay.channel(for: "vm_bye"))
            let packets = try channel.listen().packets
            let ended = Task { for await _ in packets {}; return true }
            try await Task.sleep(for: .milliseconds(200))
            await relay.removeSink("vm_bye")
            #expect(await ended.value)
            #expect(relay.channel(for: "vm_bye") == nil)
            #expect(try await PulseConnection(socketPath: daemon.socketPath).sinkExistsAfterConnect(name: "vm_bye") == false)
            await relay.shutdown()
        }
    }
}

extension PulseConnection {
    func sinkExistsAfterConnect(name: String) async throws -> Bool {
        try await connect()
        return try await sinkExists(name: name)
    }
}

/// PulseAudio dies under a running relay: the relay starts a new daemon, loads the sinks again
/// and the listener's stream carries on with monotonic sequence numbers and capture times.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct AudioRelayRecoveryTests {
    @Test func daemonRestartRecreatesSinksAndResumesCapture() async throws {
        let directory = NSTemporaryDirectory() + "pa-relay-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = try AudioRelay(socketPath: directory + "/native", runtimeDirectory: directory + "/pulse", logger: Logger(label: "test"))
        try await relay.start()
        #expect(relay.server.ownsDaemon)
        try await relay.ensureSink("vm_phoenix")
        let channel = try #require(relay.channel(for: "vm_phoenix"))
        let listener = AudioChannelTests.Listener(try channel.listen(queuePackets: 2_000).packets)
        try await Task.sleep(for: .milliseconds(500))
        let before = listener.packets.count
        #expect(before > 20)

        // Kill the daemon the relay started.
        let killed = try #require(relay.server.daemonPID)
        kill(killed, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        var recovered = false
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            if relay.server.daemonPID.map({ $0 != killed }) == true,
               (try? await PulseConnection(socketPath: directory + "/native").sinkExistsAfterConnect(name: "vm_phoenix")) == true {
                recovered = true
                break
            }
        }
        #expect(recovered, "a new daemon with the VM's sink")
        // The listener keeps receiving from the new daemon.
        let count = listener.packets.count
        try await Task.sleep(for: .seconds(1))
        #expect(listener.packets.count > count + 50, "\(listener.packets.count - count) packets in the second after recovery")
        let packets = listener.packets
        #expect(zip(packets, packets.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 && $1.captureMicros > $0.captureMicros })
        listener.stop()
        await relay.shutdown()
        #expect(!PulseServer.isAnswering(socketPath: directory + "/native"))
    }
}
