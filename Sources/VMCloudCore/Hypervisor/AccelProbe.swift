import Foundation
import Libvirt
import Logging

/// Decides `--accel auto` by experiment: /dev/kvm can exist while KVM guests hang (seen on the
/// build machines: stuck at "Booting from ROM"). The probe boots the image's kernel under KVM
/// with no root file system and waits for it to print its banner on the serial console.
package struct AccelProbe {
    package let libvirt: LibvirtClient
    package let state: StateDirectory
    package let image: GuestImage
    package let logger: Logger
    package var deadline: TimeInterval = 20

    package init(libvirt: LibvirtClient, state: StateDirectory, image: GuestImage, logger: Logger, deadline: TimeInterval = 20) {
        self.libvirt = libvirt
        self.state = state
        self.image = image
        self.logger = logger
        self.deadline = deadline
    }

    package struct Failure: Error, CustomStringConvertible {
        package let description: String

        package init(description: String) {
            self.description = description
        }
    }

    package func resolve(_ choice: AcceleratorChoice) async throws -> Accelerator {
        switch choice {
        case .kvm: return .kvm
        case .tcg: return .tcg
        case .auto:
            let verdict = await probe(.kvm)
            switch verdict {
            case .success:
                return .kvm
            case .failure(let failure):
                logger.warning("KVM unusable, guests run under TCG (software emulation)", metadata: ["why": "\(failure)"])
                return .tcg
            }
        }
    }

    /// Boots a throwaway domain under `accelerator`; success means the kernel banner appeared
    /// on the serial console before the deadline.
    package func probe(_ accelerator: Accelerator) async -> Result<Void, Failure> {
        if accelerator == .kvm, !FileManager.default.fileExists(atPath: "/dev/kvm") {
            return .failure(Failure(description: "/dev/kvm does not exist"))
        }
        guard let kernel = image.kernel else {
            return .failure(Failure(description: "the image has no kernel to probe with (direct kernel boot needed)"))
        }
        let name = "vmcloud-\(accelerator.rawValue)-probe-\(UUID().uuidString.prefix(8).lowercased())"
        let log = "\(state.runDir)/\(name).console.log"
        let definition = DomainDefinition(
            name: name, type: accelerator.domainType, memoryMiB: 256, vcpus: 1,
            kernelBoot: .init(kernelPath: kernel, cmdline: "console=ttyS0 panic=-1"),
            userNetwork: false, serialLogPath: log, videoModel: nil)
        defer { try? FileManager.default.removeItem(atPath: log) }
        do {
            _ = try await libvirt.createTransientDomain(xml: definition.xml())
        } catch {
            return .failure(Failure(description: "libvirt refused a \(accelerator.rawValue) domain: \(error)"))
        }
        let start = Date()
        var booted = false
        while !booted, Date().timeIntervalSince(start) < deadline {
            booted = (try? String(contentsOfFile: log, encoding: .utf8))?.contains("Linux version") == true
            if !booted { try? await Task.sleep(for: .milliseconds(200)) }
        }
        _ = try? await libvirt.destroyDomain(name: name)
        if booted {
            logger.info("probe guest booted", metadata: ["accel": "\(accelerator.rawValue)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(start)))"])
            return .success(())
        }
        return .failure(Failure(description: "a \(accelerator.rawValue) guest printed nothing within \(String(format: "%g", deadline)) s (timeout)"))
    }
}
