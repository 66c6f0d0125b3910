import Foundation
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The one backoff of the pool's boots and the machines' actions.
struct BackoffTests {
    @Test func pausesOneSecondThenDoublesUpToAMinute() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        var backoff = Backoff()
        #expect(backoff.allows(at: now), "nothing failed yet")
        let pauses = (0..<9).map { _ in backoff.failed(at: now) }
        #expect(pauses == [1, 2, 4, 8, 16, 32, 60, 60, 60])
        #expect(backoff.failures == 9)
        #expect(!backoff.allows(at: now.addingTimeInterval(59.9)))
        #expect(backoff.allows(at: now.addingTimeInterval(60)))
    }
}
