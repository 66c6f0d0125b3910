import Foundation
import VMCloudCore

/// One check's result: what was looked at, the verdict, and for warn/fail what to do.
package struct DoctorFinding: Codable, Sendable, Equatable {
    package enum Verdict: String, Codable, Sendable, Comparable {
        case ok, warn, fail
        package static func < (a: Verdict, b: Verdict) -> Bool {
            let order: [Verdict] = [.ok, .warn, .fail]
            return order.firstIndex(of: a)! < order.firstIndex(of: b)!
        }
    }

    package var check: String
    package var verdict: Verdict
    package var detail: String
    /// nil when the verdict is ok.
    package var advice: String?
    /// Seconds a probe boot took (KVM and TCG checks only): shows the verdict came from a boot.
    package var probeSeconds: Double?
    package var probeDeadline: Double?
}

/// A host check; each is small and independent, so one failing never hides the others.
package protocol DoctorCheck: Sendable {
    var name: String { get }
    func run() async -> DoctorFinding
}
