import Foundation
import GRDB
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// A handle's edges: the table (state, event) -> next state, and the store's refusal of anything else.
@Suite struct HandleLifecycleTests {
    /// Every legal edge, written out; every (state, event) pair not listed must be illegal.
    static let legal: [(HandleState, HandleEvent, HandleState)] = [
        (.waiting, .assigned, .assigned),
        (.waiting, .released, .released),
        (.waiting, .cancelled, .cancelled),
        (.assigned, .released, .released),
        (.assigned, .lost, .lost),
    ]

    @Test func everyStateAndEventPairFollowsTheTable() {
        var expected: [String: HandleState] = [:]
        for (state, event, next) in Self.legal {
            #expect(expected.updateValue(next, forKey: "\(state) \(event)") == nil, "\(state) \(event) listed twice")
        }
        for state in HandleState.allCases {
            for event in HandleEvent.allCases {
                #expect(state.apply(event) == expected["\(state) \(event)"], "\(state) + \(event)")
            }
        }
    }

    /// A released handle is final: losing it (its old VM failing later) is refused and writes nothing.
    @Test func theStoreRefusesAnIllegalEdgeAndLeavesTheRowAlone() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = try await store.createBatch(size: 1, homepage: "http://a.test/")
        let handle = try await store.lock(batchId: batch.id!)
        #expect(try await store.release(handleId: handle.id!) == .nothingToDo)
        let released = try #require(try await store.handle(handle.id!))
        #expect(released.state == .released)
        await #expect(throws: IllegalHandleTransition(handleId: handle.id, state: .released, event: .lost)) {
            try await store.pool.write { db in
                var row = try #require(try HandleRecord.fetchOne(db, key: handle.id!))
                row.reason = "VM 1 failed"
                try Store.move(db, &row, .lost)
            }
        }
        #expect(try await store.handle(handle.id!) == released)
    }
}
