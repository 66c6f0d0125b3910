import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The size and the free space (for unprivileged writers) of the file system holding a path,
/// from statvfs(3): a metadata read that never waits on a device.
package struct FileSystemSpace {
    package let totalBytes: UInt64
    package let availableBytes: UInt64

    package struct Failure: Error, CustomStringConvertible {
        /// strerror of statvfs's errno.
        package let description: String

        package init(description: String) {
            self.description = description
        }
    }

    package init(of path: String) throws {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { throw Failure(description: String(cString: strerror(errno))) }
        totalBytes = UInt64(stats.f_blocks) * UInt64(stats.f_frsize)
        availableBytes = UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }
}
