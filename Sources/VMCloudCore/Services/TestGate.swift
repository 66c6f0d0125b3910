import Foundation

/// Holds the appliance at a named point so that a test can break something exactly there (kill
/// libvirtd before the engine's first (adopting) pass, PulseAudio before the relay connects, the appliance
/// while a VM is being reset).
///
/// Off unless `VMCLOUD_TEST_GATES` names a directory that holds `<name>.hold`. Then
/// `pass(name)` writes `<dir>/<name>.reached` and waits until `<dir>/<name>.open` exists (at
/// most 5 minutes).
package enum TestGate {
    package static let directory = ProcessInfo.processInfo.environment["VMCLOUD_TEST_GATES"].flatMap { $0.isEmpty ? nil : $0 }

    package static func pass(_ name: String) async {
        guard let directory, FileManager.default.fileExists(atPath: "\(directory)/\(name).hold") else { return }
        let reached = "\(directory)/\(name).reached"
        FileManager.default.createFile(atPath: reached, contents: nil)
        let deadline = ContinuousClock.now + .seconds(300)
        while !FileManager.default.fileExists(atPath: "\(directory)/\(name).open"), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
