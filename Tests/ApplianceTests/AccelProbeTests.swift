import Foundation
import Libvirt
import Logging
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The probe behind `--accel auto` boots a real guest. Under TCG (always available) it must see
/// the kernel's banner; without a kernel it must refuse with a reason. The KVM verdict itself
/// depends on the host (on the build machines KVM guests hang), so `auto` is required to agree
/// with a KVM probe run beside it.
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

    /// `auto` follows the KVM probe's verdict: KVM when its kernel boots, TCG otherwise (on the
    /// build machines /dev/kvm exists but KVM guests hang, so this ends in TCG after the deadline),
    /// and it ends within the deadline either way.
    @Test func autoFollowsTheKVMProbe() async throws {
        try await withProbe { defaultProbe in
            // A KVM guest that works prints its banner within a second or two; a hung one never.
            var probe = defaultProbe
            probe.deadline = 8
            let kvmBoots: Bool
            if case .success = await probe.probe(.kvm) { kvmBoots = true } else { kvmBoots = false }
            let start = Date()
            let chosen = try await probe.resolve(.auto)
            #expect(Date().timeIntervalSince(start) < probe.deadline + 10)
            #expect(chosen == (kvmBoots ? .kvm : .tcg), "the KVM probe says \(kvmBoots ? "boots" : "does not boot"), auto chose \(chosen)")
        }
    }
}
