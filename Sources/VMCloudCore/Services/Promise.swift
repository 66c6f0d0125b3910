import Synchronization

/// A result set once and awaited by any number of tasks.
///
/// Why not await a `Task`'s value: that await cannot be given up. A waiter that races it against
/// a timeout in a task group would still wait for it when the group ends (a group waits for all
/// its children), so a bring-up stuck in libvirt would hold the request past its deadline. Here a
/// cancelled waiter stops waiting at once (CancellationError) and the work goes on for the others.
package final class Promise<Value: Sendable>: Sendable, Equatable {
    private struct State {
        package var result: Result<Value, Error>?
        package var waiters: [UInt64: CheckedContinuation<Value, Error>] = [:]
        package var nextWaiter: UInt64 = 0

        package init(result: Result<Value, Error>? = nil, waiters: [UInt64: CheckedContinuation<Value, Error>] = [:], nextWaiter: UInt64 = 0) {
            self.result = result
            self.waiters = waiters
            self.nextWaiter = nextWaiter
        }
    }

    private let state = Mutex(State())

    init() {}

    /// Sets the result and resumes every waiter; later calls change nothing.
    package func fulfil(_ result: Result<Value, Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    package var isFulfilled: Bool { state.withLock { $0.result != nil } }

    /// The result once it is set; CancellationError as soon as the waiting task is cancelled.
    package var value: Value {
        get async throws {
            let id = state.withLock { state in
                defer { state.nextWaiter += 1 }
                return state.nextWaiter
            }
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let now = state.withLock { state -> Result<Value, Error>? in
                        if let result = state.result { return result }
                        // A cancel that came before this registration found nothing to resume.
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let now { continuation.resume(with: now) }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
            }
        }
    }

    /// The same promise (identity), as for a `Task`.
    package static func == (lhs: Promise, rhs: Promise) -> Bool { lhs === rhs }
}
