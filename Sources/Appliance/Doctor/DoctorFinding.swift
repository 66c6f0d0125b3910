import Foundation

/// One check's result: what was looked at, the verdict, and for warn/fail what to do.
struct DoctorFinding: Codable, Sendable, Equatable {
    enum Verdict: String, Codable, Sendable, Comparable {
        case ok, warn, fail
        static func < (a: Verdict, b: Verdict) -> Bool {
            let order: [Verdict] = [.ok, .warn, .fail]
            return order.firstIndex(of: a)! < order.firstIndex(of: b)!
        }
    }

    var check: String
    var verdict: Verdict
    var detail: String
    /// nil when the verdict is ok.
    var advice: String?
    /// Seconds a probe boot took (KVM and TCG checks only): shows the verdict came from a boot.
    var probeSeconds: Double?
    var probeDeadline: Double?
}

/// A host check; each is small and independent, so one failing never hides the others.
protocol DoctorCheck: Sendable {
    var name: String { get }
    func run() async -> DoctorFinding
}
