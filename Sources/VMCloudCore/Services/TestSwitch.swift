import Foundation

/// Behaviour a test turns off to prove that another path works on its own. Each is an
/// environment variable named `VMCLOUD_TEST_*`, read once; none is set in production.
package enum TestSwitch {
    /// `VMCLOUD_TEST_NO_QEMU_PID_POLL=1`: a crashed guest is noticed through libvirt's lifecycle
    /// event only (the crash tests fail if that subscription breaks).
    package static let noQemuPidPoll = ProcessInfo.processInfo.environment["VMCLOUD_TEST_NO_QEMU_PID_POLL"] == "1"
}
