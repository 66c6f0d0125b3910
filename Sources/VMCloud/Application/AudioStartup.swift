import AudioRelay
import Foundation
import Logging
import VMCloudCore

enum AudioStartup {
    /// The audio relay with its PulseAudio daemon, unless audio is off.
    static func start(config: ServeConfig, state: StateDirectory, logger: Logger) async throws -> AudioRelay? {
        guard config.audio else { return nil }
        // Without its PulseAudio module QEMU refuses to start any VM with a sound card.
        let qemuModule = "/usr/lib/x86_64-linux-gnu/qemu/audio-pa.so"
        guard FileManager.default.fileExists(atPath: qemuModule) else {
            throw ServeConfig.Invalid(description: "audio: QEMU's PulseAudio backend \(qemuModule) is missing (apt-get install qemu-system-gui), or run with --no-audio")
        }
        let relay = try AudioRelay(socketPath: state.audioSocket, runtimeDirectory: state.audioRuntime, logger: logger)
        do {
            try await relay.start(afterDaemonStarted: { await TestGate.pass("audio") })
        } catch {
            throw ServeConfig.Invalid(description: "audio: \(error) (install pulseaudio, or run with --no-audio)")
        }
        return relay
    }
}
