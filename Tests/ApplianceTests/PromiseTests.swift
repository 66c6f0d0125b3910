import Foundation
import Synchronization
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The set-once result the waker's requests await: every waiter gets it, and a cancelled waiter
/// stops waiting at once (what lets a request's wait race a timeout while the bring-up runs on).
@Suite struct PromiseTests {
    @Test func everyWaiterGetsTheResultEvenOneThatComesLate() async throws {
        let promise = Promise<Int>()
        async let first = promise.value
        async let second = promise.value
        try await Task.sleep(for: .milliseconds(50))
        #expect(!promise.isFulfilled)
        promise.fulfil(.success(7))
        promise.fulfil(.success(8))
        let both = try await [first, second]
        #expect(both == [7, 7], "the first result stays")
        #expect(try await promise.value == 7)
    }

    /// A waiter that does not end is seen as a failure within 5 s, and the promise is fulfilled
    /// at the end so that no waiter outlives the test.
    @Test func aCancelledWaiterStopsWaitingAndTheOthersGoOn() async throws {
        let promise = Promise<Int>()
        let abandoned = Task { try await promise.value }
        let patient = Task { try await promise.value }
        defer { promise.fulfil(.failure(APIError.notFound("gone"))) }
        try await Task.sleep(for: .milliseconds(50))
        abandoned.cancel()
        try await Self.ends(abandoned, "the cancelled waiter")
        await #expect(throws: CancellationError.self) { try await abandoned.value }
        #expect(!promise.isFulfilled)
        promise.fulfil(.failure(APIError.notFound("gone")))
        await #expect(throws: APIError.self) { try await patient.value }
    }

    @Test func aWaiterCancelledBeforeItWaitsDoesNotWait() async throws {
        let promise = Promise<Void>()
        defer { promise.fulfil(.success(())) }
        let waiter = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await promise.value
        }
        try await Self.ends(waiter, "the waiter cancelled before it waited")
        await #expect(throws: CancellationError.self) { try await waiter.value }
    }

    /// Fails (instead of hanging) unless `task` ends within 5 s.
    static func ends<T>(_ task: Task<T, Error>, _ what: String) async throws {
        let ended = Mutex(false)
        Task {
            _ = await task.result
            ended.withLock { $0 = true }
        }
        try await eventually(what, timeout: 5) { ended.withLock { $0 } }
    }
}
