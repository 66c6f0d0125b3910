import Foundation
import GRDB
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// Every pair of statuses, written out: the legal edges of a generic VM, and the store refusing
/// the others.
struct MachineLifecycleTableTests {
    /// From each status, the statuses it may move to (besides itself and destroyed, which every
    /// status but destroyed may reach).
    static let expected: [MachineStatus: Set<MachineStatus>] = [
        .starting: [.installing, .running, .failedToStart, .saving],
        .failedToStart: [.starting, .saving],
        .installing: [.running, .suspended, .starting, .saving],
        .running: [.suspended, .starting, .saving],
        .suspended: [.running, .installing, .starting, .saving],
        .saving: [.stopped, .failedToSave],
        .failedToSave: [.starting],
        .stopped: [.starting],
        .destroyed: [],
    ]

    @Test(arguments: MachineStatus.allCases)
    func edgesFrom(_ from: MachineStatus) {
        for to in MachineStatus.allCases {
            let legal = from == to || (from != .destroyed && to == .destroyed) || Self.expected[from]!.contains(to)
            #expect(MachineLifecycle.allows(from, to) == legal, "\(from.rawValue) -> \(to.rawValue)")
        }
    }

    @Test func theStoreRefusesAnIllegalEdgeAndKeepsTheRow() async throws {
        let dir = try makeTemporaryDirectory("lifecycle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(path: dir + "/db.sqlite")
        let machine = try await store.createMachine(name: "m", spec: .plain(hda: .stored("base.qcow2")))
        let id = machine.id!
        #expect(try await store.setStatus(machine: id, from: [.starting], to: .running))
        await #expect(throws: MachineLifecycle.IllegalEdge(machine: id, from: .running, to: .stopped)) {
            try await store.setStatus(machine: id, from: [.running], to: .stopped)
        }
        let after = try await store.machine(id)
        #expect(after?.status == .running)
        #expect(try await store.machineEvents(machine: id).contains { $0.kind == "machine.stopped" } == false)
        // Destroyed is final.
        #expect(try await store.setStatus(machine: id, from: [.running], to: .destroyed))
        await #expect(throws: MachineLifecycle.IllegalEdge.self) {
            try await store.setStatus(machine: id, from: [.destroyed], to: .starting)
        }
    }
}
