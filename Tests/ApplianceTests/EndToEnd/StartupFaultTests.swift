import AudioTestSupport
import Foundation
import Testing

/// A dependency that dies while the appliance starts is a fault to recover from, not a reason
/// to exit (issue 28). libvirtd dying at the start-up resync is in `LibvirtdRestartTests` (it
/// restarts the host's libvirtd, so it runs alone).
@Suite(.serialized) struct StartupFaultTests {
    /// PulseAudio is killed after it answered and before the relay connects. The appliance used
    /// to exit ("audio: not connected to PulseAudio"); now it starts a new daemon, serves, and a
    /// VM booted afterwards has its sink and streams audio.
    @Test func pulseAudioDyingAtStartIsRecovered() async throws {
        let parent = try makeTemporaryDirectory("audio-gate")
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let gates = try TestGates(in: parent, holding: ["audio"])
        try await withAppliance("audio-fault", environment: gates.environment, whileStarting: { appliance in
            try await gates.reached("audio", timeout: 25)
            let socket = appliance.stateDir + "/audio/native"
            _ = try runTool("/usr/bin/pkill", ["-KILL", "-f", "socket=\(socket)"])
            try await eventually("the first daemon is gone", timeout: 10) {
                (try? runTool("/usr/bin/pgrep", ["-f", "socket=\(socket)"])) == nil
            }
            gates.open("audio")
        }) { run in
            #expect(run.appliance.isRunning)
            let api = run.api
            _ = try await api.postOK("/set-pool-size/1/1/0")
            let batch = try await api.postOK("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            let handle = try await api.postOK("/lock/\(batch)")
            var vm = 0
            try await eventually("the handle assigned", timeout: 180) {
                let status = try await api.handleStatus(handle)
                vm = status["vmid"] as? Int ?? 0
                return status["assigned"] as? Bool == true
            }
            let links = try await AudioStreamTests.audioLinks(run, .init(handle: handle, vm: vm, control: "", view: ""))
            let socket = run.appliance.stateDir + "/audio/native"
            let played = Task {
                try await Task.sleep(for: .milliseconds(500))
                return try await paplay(wav: sineWAV(frequency: 1000, seconds: 1), socketPath: socket, sink: links.domain, directory: run.directory)
            }
            let (received, _) = try await AudioStreamTests.listenWebSocket(links.ws, seconds: 3)
            #expect(try await played.value == 0, "the VM's sink exists in the new daemon")
            let packets = received.packets.withLock { $0 }
            #expect(packets.count > 100, "\(packets.count) packets in 3 s")
            #expect(dominantFrequency(try AudioStreamTests.decode(packets)) == 1000)
            #expect(run.appliance.logTail(400).contains("recovering in the background"), "the start-up fault was the one recovered from")
        }
    }
}
