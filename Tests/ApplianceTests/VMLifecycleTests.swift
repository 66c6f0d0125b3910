import Foundation
import GRDB
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The pool VM's edges: the table (state, event) -> next state, and the store's refusal of
/// anything else.
@Suite struct VMLifecycleTests {
    /// Every legal edge, written out; every (state, event) pair not listed must be illegal.
    static let legal: [(VMState, VMEvent, VMState)] = [
        (.pending, .domainStarted, .booting),
        (.pending, .hello, .idle),
        (.pending, .failed, .failed),
        (.booting, .hello, .idle),
        (.booting, .failed, .failed),
        (.idle, .granted, .preparing),
        (.idle, .jobClaimed, .working),
        (.idle, .retired, .destroying),
        (.idle, .failed, .failed),
        (.preparing, .configured, .prepared),
        (.preparing, .batchCancelled, .resetting),
        (.preparing, .failed, .failed),
        (.prepared, .locked, .locked),
        (.prepared, .batchCancelled, .resetting),
        (.prepared, .failed, .failed),
        (.locked, .released, .resetting),
        (.locked, .failed, .failed),
        (.working, .jobEnded, .resetting),
        (.working, .failed, .failed),
        (.resetting, .resetDone, .idle),
        (.resetting, .resetForBatch, .preparing),
        (.resetting, .failed, .failed),
        (.failed, .discarded, .destroying),
        (.destroying, .destroyed, .destroyed),
    ]

    @Test func everyStateAndEventPairFollowsTheTable() {
        var expected: [String: VMState] = [:]
        for (state, event, next) in Self.legal {
            #expect(expected.updateValue(next, forKey: "\(state) \(event)") == nil, "\(state) \(event) listed twice")
        }
        for state in VMState.allCases {
            for event in VMEvent.allCases {
                #expect(state.apply(event) == expected["\(state) \(event)"], "\(state) + \(event)")
            }
        }
    }

    /// A VM driven to `idle` and then to `destroyed` through the store's checked writes.
    static func destroyedVM(_ store: Store) async throws -> Int64 {
        let vm = try await makeIdleVM(store)
        #expect(try await store.transition(vm: vm, .retired))
        #expect(try await store.transition(vm: vm, .destroyed))
        #expect(try await store.vm(vm)?.state == .destroyed)
        return vm
    }

    /// The VM's row and the event log, to prove that a refused edge wrote nothing.
    static func snapshot(_ store: Store, _ vm: Int64) async throws -> (VMRecord?, Int) {
        (try await store.vm(vm), try await store.events().count)
    }

    @Test func theStoreRefusesAnIllegalEdgeAndLeavesTheRowAlone() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let idle = try await makeIdleVM(store)
        let before = try await Self.snapshot(store, idle)
        // idle -> destroyed skips destroying (the domain would never be torn down).
        #expect(try await store.transition(vm: idle, .destroyed) == false)
        await #expect(throws: IllegalVMTransition(vmId: idle, state: .idle, event: .destroyed)) {
            try await store.pool.write { db in
                var vm = try #require(try VMRecord.fetchOne(db, key: idle))
                try Store.move(db, &vm, .destroyed)
            }
        }
        let after = try await Self.snapshot(store, idle)
        #expect(after.0 == before.0 && after.1 == before.1)

        // destroyed is terminal: no event moves it.
        let gone = try await Self.destroyedVM(store)
        let buried = try await Self.snapshot(store, gone)
        for event in VMEvent.allCases {
            #expect(try await store.transition(vm: gone, event) == false, "\(event)")
            await #expect(throws: IllegalVMTransition.self, "\(event)") {
                try await store.pool.write { db in
                    var vm = try #require(try VMRecord.fetchOne(db, key: gone))
                    try Store.move(db, &vm, event)
                }
            }
        }
        let still = try await Self.snapshot(store, gone)
        #expect(still.0 == buried.0 && still.1 == buried.1)
    }

    /// A refused edge inside a larger write rolls all of it back: releasing a handle whose VM is
    /// not locked (a row edited behind the store's back) leaves the handle assigned.
    @Test func aRefusedEdgeRollsBackTheWholeTransaction() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = try await store.createBatch(size: 1, homepage: "http://a.test/")
        let vm = try await makeIdleVM(store)
        let handle = try await store.lock(batchId: batch.id!)
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE handle SET state = 'assigned', vmId = ? WHERE id = ?", arguments: [vm, handle.id])
        }
        let before = try await Self.snapshot(store, vm)
        let assigned = try await store.handle(handle.id!)
        await #expect(throws: IllegalVMTransition(vmId: vm, state: .idle, event: .released)) {
            try await store.release(handleId: handle.id!)
        }
        #expect(try await store.handle(handle.id!) == assigned)
        let after = try await Self.snapshot(store, vm)
        #expect(after.0 == before.0 && after.1 == before.1)
    }
}
