import Foundation
import Libvirt
import Logging

/// Decides `--accel auto` by experiment: /dev/kvm can exist while KVM guests hang (seen on the
/// build machines: stuck at "Booting from ROM"). The probe boots the image's kernel under KVM
/// with no root file system and waits for it to print its banner on the serial console.
struct AccelProbe {
    let libvirt: LibvirtClient
    let state: StateDirectory
    let image: GuestImage
    let logger: Logger
    var deadline: TimeInterval = 20

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func resolve(_ choice: AcceleratorChoice) async throws -> Accelerator {
        switch choice {
        case .kvm: return .kvm
        case .tcg: return .tcg
        case .auto:
            let verdict = await probeKVM()
            switch verdict {
            case .success:
                return .kvm
            case .failure(let failure):
                logger.warning("KVM unusable, guests run under TCG (software emulation)", metadata: ["why": "\(failure)"])
                return .tcg
            }
        }
    }

    /// Boots a throwaway KVM domain; success means the kernel banner appeared before the deadline.
    func probeKVM() async -> Result<Void, Failure> {
        guard FileManager.default.fileExists(atPath: "/dev/kvm") else { return .failure(Failure(description: "/dev/kvm does not exist")) }
        guard let kernel = image.kernel else {
            return .failure(Failure(description: "the image has no kernel to probe with (direct kernel boot needed)"))
        }
        let name = "vmcloud-kvm-probe-\(UUID().uuidString.prefix(8).lowercased())"
        let log = "\(state.runDir)/\(name).console.log"
        let definition = DomainDefinition(
            name: name, type: Accelerator.kvm.domainType, memoryMiB: 256, vcpus: 1,
            kernelBoot: .init(kernelPath: kernel, cmdline: "console=ttyS0 panic=-1"),
            userNetwork: false, serialLogPath: log, videoModel: nil)
        defer { try? FileManager.default.removeItem(atPath: log) }
        do {
            _ = try await libvirt.createTransientDomain(xml: definition.xml())
        } catch {
            return .failure(Failure(description: "libvirt refused a KVM domain: \(error)"))
        }
        defer { Task { [libvirt] in _ = try? await libvirt.destroyDomain(name: name) } }
        let start = Date()
        while Date().timeIntervalSince(start) < deadline {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("Linux version") {
                logger.info("KVM probe booted", metadata: ["seconds": "\(String(format: "%.1f", Date().timeIntervalSince(start)))"])
                return .success(())
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return .failure(Failure(description: "a KVM guest printed nothing within \(Int(deadline)) s"))
    }
}
