import Foundation
import VMCloudCore

/// All findings, printable for a terminal or as JSON for scripts.
package struct DoctorReport: Codable, Sendable {
    package var findings: [DoctorFinding]
    package var worst: DoctorFinding.Verdict { findings.map(\.verdict).max() ?? .ok }

    package func text() -> String {
        var lines: [String] = []
        for f in findings {
            var line = "[\(f.verdict.rawValue.uppercased().padding(toLength: 4, withPad: " ", startingAt: 0))] \(f.check): \(f.detail)"
            if let seconds = f.probeSeconds, let deadline = f.probeDeadline {
                line += String(format: " (probe boot %.1f s, deadline %.1f s)", seconds, deadline)
            }
            lines.append(line)
            if let advice = f.advice { lines.append("       -> \(advice)") }
        }
        let counts = [DoctorFinding.Verdict.ok, .warn, .fail].map { v in "\(findings.filter { $0.verdict == v }.count) \(v.rawValue)" }
        lines.append("\(counts.joined(separator: ", ")): \(worst == .fail ? "this host is not ready" : "this host can run the appliance")")
        return lines.joined(separator: "\n")
    }

    package func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
