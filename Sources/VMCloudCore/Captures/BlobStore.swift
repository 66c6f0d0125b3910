import Crypto
import Foundation

/// Captured bytes (screenshots, MHTML) stored once by content: `<root>/ab/abcdef...` where the
/// name is the SHA-256 of the content. Incoming data is written to a temporary file first, so
/// a half-received capture never appears under a hash.
package struct BlobStore: Sendable {
    package let root: String
    package var temporaryDirectory: String { root + "/tmp" }

    package init(root: String) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root + "/tmp", withIntermediateDirectories: true)
        // Leftovers of captures interrupted by a crash.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/tmp")) ?? [] {
            try? FileManager.default.removeItem(atPath: root + "/tmp/" + name)
        }
    }

    package func path(hash: String) -> String { "\(root)/\(hash.prefix(2))/\(hash)" }

    /// Hashes a finished temporary file and moves it into place (or drops it when the same
    /// content is stored already). Returns the hash.
    package func adopt(temporaryFile path: String) throws -> String {
        var hasher = SHA256()
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        try handle.close()
        let hash = hasher.finalize().hex
        let target = self.path(hash: hash)
        let fm = FileManager.default
        if fm.fileExists(atPath: target) {
            try fm.removeItem(atPath: path)
        } else {
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try fm.moveItem(atPath: path, toPath: target)
        }
        return hash
    }
}
