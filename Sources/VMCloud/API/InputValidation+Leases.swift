import Foundation
import VMCloudCore

/// A batch's `leaseSeconds` and `expiresAt` (POST /v1/batches).
extension InputValidation {
    /// Shorter leases would be lost to a slow poll; a day is the longest a crashed application
    /// may keep a VM.
    static let leaseSeconds = 5...86_400
    /// A batch may expire at most this far ahead (30 days).
    static let maxExpiry: TimeInterval = 30 * 86_400

    static func batchLimits(leaseSeconds: Int?, expiresAt: String?, now: Date = Date()) throws -> BatchLimits {
        if let lease = leaseSeconds, !Self.leaseSeconds.contains(lease) {
            throw APIError.badRequest("leaseSeconds must be an integer from \(Self.leaseSeconds.lowerBound) to \(Self.leaseSeconds.upperBound), got \(lease)")
        }
        return BatchLimits(leaseSeconds: leaseSeconds, expiresAt: try expiresAt.map { try expiry($0, now: now) })
    }

    /// An ISO 8601 date-time with its zone (`2026-05-01T12:00:00Z`, fractions of a second and
    /// `+02:00` allowed), as the API writes its own times, later than now and at most 30 days on.
    static func expiry(_ raw: String, now: Date) throws -> Date {
        guard raw.utf8.count <= 64, let date = iso8601Date(raw) else {
            throw APIError.badRequest("expiresAt must be an ISO 8601 date-time with a zone, like 2026-05-01T12:00:00Z, got '\(raw.prefix(64))'")
        }
        guard date > now else { throw APIError.badRequest("expiresAt must be in the future, got \(raw)") }
        guard date.timeIntervalSince(now) <= maxExpiry else {
            throw APIError.badRequest("expiresAt must be at most 30 days ahead, got \(raw)")
        }
        return date
    }

    private static func iso8601Date(_ raw: String) -> Date? {
        let whole = ISO8601DateFormatter()
        whole.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return whole.date(from: raw) ?? fractional.date(from: raw)
    }
}
