import GRDB
import Metrics

/// Figures read from the store at each scrape (counts are the store's truth, not running
/// tallies that a restart would reset): VMs per state, generic VMs per status, queues.
package struct StoreGauges {
    package let store: Store

    package init(store: Store) {
        self.store = store
    }

    package struct Counts: Sendable {
        package var vms: [VMState: Int] = [:]
        package var machines: [MachineStatus: Int] = [:]
        package var handlesWaiting = 0
        package var batchesOpen = 0
        package var jobs: [JobState: Int] = [:]

        package init(vms: [VMState: Int] = [:], machines: [MachineStatus: Int] = [:], handlesWaiting: Int = 0, batchesOpen: Int = 0, jobs: [JobState: Int] = [:]) {
            self.vms = vms
            self.machines = machines
            self.handlesWaiting = handlesWaiting
            self.batchesOpen = batchesOpen
            self.jobs = jobs
        }
    }

    package func read() async throws -> Counts {
        try await store.pool.read { db in
            var counts = Counts()
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM vm GROUP BY state") {
                if let state = VMState(rawValue: row["state"]) { counts.vms[state] = row["n"] }
            }
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM machine GROUP BY status") {
                if let status = MachineStatus(rawValue: row["status"]) { counts.machines[status] = row["n"] }
            }
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM job GROUP BY state") {
                if let state = JobState(rawValue: row["state"]) { counts.jobs[state] = row["n"] }
            }
            counts.handlesWaiting = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM handle WHERE state = ?", arguments: [HandleState.waiting.rawValue]) ?? 0
            counts.batchesOpen = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batch WHERE state = ?", arguments: [BatchState.open.rawValue]) ?? 0
            return counts
        }
    }

    /// Sets every gauge, zero included, so a state that empties reads 0 instead of its last value.
    package func update() async throws {
        let counts = try await read()
        for state in VMState.allCases {
            Gauge(label: "vmcloud_vms", dimensions: [("state", state.rawValue)]).record(counts.vms[state] ?? 0)
        }
        for status in MachineStatus.allCases {
            Gauge(label: "vmcloud_machines", dimensions: [("status", status.rawValue)]).record(counts.machines[status] ?? 0)
        }
        for state in [JobState.queued, .running, .done, .failed] {
            Gauge(label: "vmcloud_jobs", dimensions: [("state", state.rawValue)]).record(counts.jobs[state] ?? 0)
        }
        Gauge(label: "vmcloud_handles_waiting").record(counts.handlesWaiting)
        Gauge(label: "vmcloud_batches_open").record(counts.batchesOpen)
    }
}
