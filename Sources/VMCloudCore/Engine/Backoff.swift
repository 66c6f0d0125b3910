import Foundation

/// Consecutive failures of one kind of work, and the time before which it is not tried again:
/// 1 s after the first failure, doubling up to a minute. The pool keeps one for boots (a broken
/// image or host must not turn into a storm of doomed domains); the machine role keeps one
/// per VM for its current action.
package struct Backoff: Sendable, Equatable {
    package static let ceiling: TimeInterval = 60

    package private(set) var failures = 0
    package private(set) var notBefore = Date.distantPast

    /// Records a failure at `now`; returns the pause it starts.
    @discardableResult
    package mutating func failed(at now: Date = Date()) -> TimeInterval {
        failures += 1
        let delay = min(Self.ceiling, pow(2, Double(failures - 1)))
        notBefore = now.addingTimeInterval(delay)
        return delay
    }

    /// Whether the work may run at `now`.
    package func allows(at now: Date = Date()) -> Bool { now >= notBefore }
}
