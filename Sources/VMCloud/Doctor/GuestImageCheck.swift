import Foundation
import VMCloudCore

/// The image `serve` boots its VMs from.
struct GuestImageCheck: DoctorCheck {
    let directory: String
    let name = "guest image"

    func run() async -> DoctorFinding {
        do {
            let image = try GuestImage.load(directory: directory)
            if image.kernel == nil {
                return DoctorFinding(check: name, verdict: .warn, detail: "\(image.disk) present but no vmlinuz: the accelerator probe cannot boot it",
                                     advice: "rebuild it with `appliance image build` (direct kernel boot), or use --accel kvm/tcg explicitly")
            }
            return DoctorFinding(check: name, verdict: .ok, detail: "\(image.directory) (disk.qcow2, vmlinuz\(image.initrd != nil ? ", initrd.img" : ""))")
        } catch {
            return DoctorFinding(check: name, verdict: .fail, detail: "\(error)",
                                 advice: "build the browser image with `make image` (or `appliance image build --state-dir <dir>`), or pass --image-dir")
        }
    }
}
