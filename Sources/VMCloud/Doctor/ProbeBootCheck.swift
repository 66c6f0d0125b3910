import Foundation
import Libvirt
import Logging
import VMCloudCore

/// Boots AccelProbe's throwaway guest under one accelerator: the verdict is whether the kernel
/// really printed its banner before the deadline, never whether /dev/kvm exists.
struct ProbeBootCheck: DoctorCheck {
    let accelerator: Accelerator
    let libvirtURI: String
    let imageDirectory: String
    let deadline: TimeInterval
    var name: String { "\(accelerator.rawValue) probe boot" }

    func run() async -> DoctorFinding {
        let image: GuestImage
        do { image = try GuestImage.load(directory: imageDirectory) } catch {
            return finding(.fail, "cannot probe without a guest image: \(error)", advice: "build or point to an image first (see the guest image check)")
        }
        let client = LibvirtClient(uri: libvirtURI, reconnectWait: .seconds(2))
        do { try await client.connect() } catch {
            await client.close()
            return finding(.fail, "cannot probe without libvirt: \(error)", advice: "fix the libvirt check first")
        }
        // A scratch state directory: the probe's console log must be writable by libvirt-qemu,
        // and the doctor leaves the real state directory alone.
        let scratch = NSTemporaryDirectory() + "vmcloud-doctor-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let state = StateDirectory(root: scratch)
        do { try state.prepare() } catch {
            await client.close()
            return finding(.fail, "cannot prepare a scratch directory: \(error)", advice: "check that \(NSTemporaryDirectory()) is writable and o+x")
        }
        var probe = AccelProbe(libvirt: client, state: state, image: image, logger: Logger(label: "doctor"))
        probe.deadline = deadline
        let start = Date()
        let result = await probe.probe(accelerator)
        let seconds = Date().timeIntervalSince(start)
        await client.close()
        switch result {
        case .success:
            var f = finding(.ok, "a \(accelerator.rawValue) guest booted (kernel banner on the serial console)")
            f.probeSeconds = seconds
            return f
        case .failure(let failure):
            var f: DoctorFinding
            if accelerator == .kvm {
                f = finding(.warn, "KVM is not usable, guests fall back to TCG (software emulation, several times slower): \(failure)",
                            advice: "check that the CPU's virtualization (VT-x/AMD-V) is on and exposed to this host (nested virtualization on a VM), that kvm_intel/kvm_amd is loaded and that libvirt-qemu may open /dev/kvm; `serve --accel auto` uses TCG meanwhile")
            } else {
                f = finding(.fail, "a TCG guest did not boot: \(failure)",
                            advice: "check qemu-system-x86 is installed and the image's kernel boots (images/test/build.sh makes a known-good one); raise --probe-timeout on a slow or busy host")
            }
            f.probeSeconds = seconds
            return f
        }
    }

    private func finding(_ verdict: DoctorFinding.Verdict, _ detail: String, advice: String? = nil) -> DoctorFinding {
        DoctorFinding(check: name, verdict: verdict, detail: detail, advice: advice, probeSeconds: nil, probeDeadline: deadline)
    }
}
