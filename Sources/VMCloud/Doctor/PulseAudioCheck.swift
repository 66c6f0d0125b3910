import Foundation
import VMCloudCore

/// What `serve --audio` (the default) needs: the pulseaudio daemon it starts privately and
/// QEMU's PulseAudio backend, without which QEMU refuses every VM with a sound card.
struct PulseAudioCheck: DoctorCheck {
    let stateDir: String
    var qemuModule = "/usr/lib/x86_64-linux-gnu/qemu/audio-pa.so"
    let name = "PulseAudio"

    func run() async -> DoctorFinding {
        let binary = ExecutableLookup.find("pulseaudio")
        let module = FileManager.default.fileExists(atPath: qemuModule)
        var missing: [String] = []
        if binary == nil { missing.append("the pulseaudio binary (apt-get install pulseaudio)") }
        if !module { missing.append("QEMU's backend \(qemuModule) (apt-get install qemu-system-gui)") }
        guard missing.isEmpty else {
            return DoctorFinding(check: name, verdict: .fail, detail: "missing " + missing.joined(separator: " and "),
                                 advice: "install what is missing, or run `serve --no-audio` (VMs without sound)")
        }
        let socket = StateDirectory(root: stateDir).audioSocket
        let running = FileManager.default.fileExists(atPath: socket) ? "; the appliance's daemon socket \(socket) exists" : ""
        return DoctorFinding(check: name, verdict: .ok, detail: "\(binary!) and \(qemuModule)\(running)")
    }
}

/// `which`, without a subprocess.
enum ExecutableLookup {
    static func find(_ name: String, extra: [String] = ["/usr/sbin", "/sbin"]) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        return (path + extra).map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
