import Foundation
import Libvirt
import Logging
import Testing
@testable import Appliance

/// The probe behind `--accel auto` boots a real guest. Under TCG (always available) it must see
/// the kernel's banner; without a kernel it must refuse with a reason. The KVM verdict itself
/// depends on the host (on the build machines KVM guests hang), so it is only required to end
/// within the deadline with a verdict.
@Suite(.serialized) struct AccelProbeTests {
    func withProbe(_ image: GuestImage? = nil, _ body: (AccelProbe) async throws -> Void) async throws {
        let dir = try makeTemporaryDirectory("probe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = StateDirectory(root: dir)
        try state.prepare()
        let libvirt = LibvirtClient(uri: "qemu:///system")
        try await libvirt.connect()
        let testImage = try GuestImage.load(directory: repositoryRoot + "/images/test/out")
        try await body(AccelProbe(libvirt: libvirt, state: state, image: image ?? testImage, logger: Logger(label: "test")))
        await libvirt.close()
    }

    @Test func aTCGProbeSeesTheKernelBoot() async throws {
        try await withProbe { probe in
            let verdict = await probe.probe(.tcg)
            if case .failure(let failure) = verdict { Issue.record("TCG probe failed: \(failure)") }
        }
    }

    @Test func anImageWithoutKernelCannotBeProbed() async throws {
        let image = GuestImage(directory: "/nonexistent", disk: "/nonexistent/disk.qcow2", kernel: nil, initrd: nil, cmdline: nil)
        try await withProbe(image) { probe in
            guard case .failure(let failure) = await probe.probe(.tcg) else {
                Issue.record("a probe without a kernel cannot succeed")
                return
            }
            #expect(failure.description.contains("no kernel"))
        }
    }

    @Test func autoEndsWithAVerdictWithinTheDeadline() async throws {
        try await withProbe { probe in
            let start = Date()
            let chosen = try await probe.resolve(.auto)
            #expect(Date().timeIntervalSince(start) < probe.deadline + 10)
            #expect(Accelerator.allCases.contains(chosen))
            #expect(try await probe.resolve(.tcg) == .tcg)
        }
    }
}
