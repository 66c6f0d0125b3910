import GRDB

/// What a viewer token allows.
package enum AccessScope: String, Codable, Sendable, CaseIterable {
    /// The worker: sees the screen and types.
    case control
    /// A supervisor: sees the screen; input is dropped by the bridge.
    case view
    /// A Tuner device: hears the VM's audio, never sees the screen.
    case audio

    /// Scopes that open the screen.
    package static let screen: Set<AccessScope> = [.control, .view]
}

extension AccessScope: DatabaseValueConvertible {}
