import Foundation

/// The test side of the appliance's `TestGate`: the appliance, started with
/// `VMCLOUD_TEST_GATES=<directory>`, stops at the named points (of its start-up, or a VM's reset)
/// that the test holds until the test has broken what it wants broken there and opened the gate.
struct TestGates: Sendable {
    let directory: String

    /// Gates in `parent`; the appliance stops at those named in `holding` only.
    init(in parent: String, holding: [String]) throws {
        directory = parent + "/gates"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in holding { _ = FileManager.default.createFile(atPath: "\(directory)/\(name).hold", contents: nil) }
    }

    var environment: [String: String] { ["VMCLOUD_TEST_GATES": directory] }

    /// Waits until the appliance stands at gate `name`.
    func reached(_ name: String, timeout: TimeInterval = 60) async throws {
        try await eventually("the appliance reached its \(name) gate", timeout: timeout) {
            FileManager.default.fileExists(atPath: "\(directory)/\(name).reached")
        }
    }

    /// Lets the appliance go on past gate `name`.
    func open(_ name: String) {
        _ = FileManager.default.createFile(atPath: "\(directory)/\(name).open", contents: nil)
    }

    /// From now on the appliance stops at gate `name`.
    func hold(_ name: String) {
        _ = FileManager.default.createFile(atPath: "\(directory)/\(name).hold", contents: nil)
    }

    /// From now on the appliance passes gate `name` without stopping.
    func stopHolding(_ name: String) {
        try? FileManager.default.removeItem(atPath: "\(directory)/\(name).hold")
        try? FileManager.default.removeItem(atPath: "\(directory)/\(name).reached")
    }
}
