import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where one generic VM's files live: its disks under `<state-dir>/machines/m<ID>/`, its
/// sockets and console log in the run directory QEMU binds in (`m<ID>.*`, apart from the pool's
/// `vm<ID>.*`), and what a failed save leaves under `<state-dir>/failed_to_save/`.
package struct MachineFiles: Sendable {
    package enum Slot: String, Sendable, CaseIterable { case hda, hdb }

    package let state: StateDirectory
    package let id: Int64

    package init(state: StateDirectory, id: Int64) {
        self.state = state
        self.id = id
    }

    package var directory: String { state.root + "/machines/m\(id)" }
    package func overlay(_ slot: Slot) -> String { "\(directory)/\(slot.rawValue).qcow2" }
    /// A downloaded image (the overlay's base) or other fetched file.
    package func download(_ name: String) -> String { "\(directory)/\(name).download" }
    package var inputDisk: String { directory + "/input.img" }
    package var agentSocket: String { "\(state.runDir)/m\(id).agent.sock" }
    package var vncSocket: String { "\(state.runDir)/m\(id).vnc.sock" }
    package var consoleLog: String { "\(state.runDir)/m\(id).console.log" }
    package func failedToSaveDirectory(name: String) -> String { "\(state.root)/failed_to_save/\(name)-m\(id)" }

    package func makeDirectory() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(state.root + "/machines", 0o755)
        chmod(directory, 0o755)
    }

    /// Removes the disks, downloads and sockets (destroy, or a discarded halt).
    package func removeAll() {
        for path in [directory, agentSocket, vncSocket, consoleLog] { try? FileManager.default.removeItem(atPath: path) }
    }

    package func removeSockets() {
        for path in [agentSocket, vncSocket] { try? FileManager.default.removeItem(atPath: path) }
    }
}
