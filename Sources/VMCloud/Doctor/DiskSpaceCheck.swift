import Foundation
#if canImport(Glibc)
import Glibc
import VMCloudCore
#endif

/// Free space where VM overlays and captures grow: warn under 10 GiB, fail under 2 GiB.
struct DiskSpaceCheck: DoctorCheck {
    let stateDir: String
    var warnBelow: UInt64 = 10 << 30
    var failBelow: UInt64 = 2 << 30
    let name = "disk space"

    func run() async -> DoctorFinding {
        // The state directory may not exist yet (before the first start): measure its nearest ancestor.
        var path = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        while !FileManager.default.fileExists(atPath: path), path != "/" {
            path = (path as NSString).deletingLastPathComponent
        }
        let free: UInt64
        do { free = try FileSystemSpace(of: path).availableBytes } catch {
            return DoctorFinding(check: name, verdict: .fail, detail: "statvfs(\(path)) failed: \(error)", advice: "check --state-dir")
        }
        let detail = String(format: "%.1f GiB free on %@ (for %@)", Double(free) / Double(1 << 30), path, stateDir)
        if free < failBelow {
            return DoctorFinding(check: name, verdict: .fail, detail: detail, advice: "free space or choose another --state-dir: each VM's overlay and captures need room (2 GiB is the minimum)")
        }
        if free < warnBelow {
            return DoctorFinding(check: name, verdict: .warn, detail: detail, advice: "a pool of VMs writes overlays and captures here; 10 GiB or more is recommended")
        }
        return DoctorFinding(check: name, verdict: .ok, detail: detail)
    }
}
