import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The first admin: created at first start, its key printed once and written to a file only
/// root can read, so that the operator can register clients.
package enum AdminKey {
    /// Creates the admin when the store has none; returns the new key (nil when one exists).
    package static func ensure(store: Store, path: String) async throws -> ClientKey? {
        guard try await !store.hasAdmin() else { return nil }
        // Write the file first: an admin whose key nobody could read would lock everyone out.
        let key = ClientKey.generate()
        try write(key.text + "\n", to: path)
        _ = try await store.createAdmin(key: key)
        return key
    }

    /// Temp file with mode 0600 + fsync + rename: the key file is whole or absent.
    package static func write(_ text: String, to path: String) throws {
        let temp = path + ".tmp"
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temp]) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temp, path) == 0 else {
            unlink(temp)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
