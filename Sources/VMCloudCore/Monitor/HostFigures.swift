import Foundation

/// What the monitor page shows of the host: memory, the state directory's disk, CPU load.
/// Read from /proc and statvfs; these are in-memory or metadata reads, quick enough for a
/// request handler (they never wait on a device).
package struct HostFigures: Encodable, Equatable {
    package let cpus: Int
    /// /proc/loadavg: 1, 5 and 15 minute averages.
    package let load: [Double]
    package let memoryTotalBytes: Int64
    package let memoryAvailableBytes: Int64
    package let diskPath: String
    package let diskTotalBytes: Int64
    package let diskAvailableBytes: Int64

    package init(cpus: Int, load: [Double], memoryTotalBytes: Int64, memoryAvailableBytes: Int64, diskPath: String, diskTotalBytes: Int64, diskAvailableBytes: Int64) {
        self.cpus = cpus
        self.load = load
        self.memoryTotalBytes = memoryTotalBytes
        self.memoryAvailableBytes = memoryAvailableBytes
        self.diskPath = diskPath
        self.diskTotalBytes = diskTotalBytes
        self.diskAvailableBytes = diskAvailableBytes
    }

    package static func read(diskPath: String) -> HostFigures {
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let loadavg = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        let disk = try? FileSystemSpace(of: diskPath)
        return HostFigures(
            cpus: ProcessInfo.processInfo.activeProcessorCount,
            load: loadavg.split(separator: " ").prefix(3).compactMap { Double($0) },
            memoryTotalBytes: kibibytes("MemTotal", in: meminfo) * 1024,
            memoryAvailableBytes: kibibytes("MemAvailable", in: meminfo) * 1024,
            diskPath: diskPath,
            diskTotalBytes: Int64(disk?.totalBytes ?? 0),
            diskAvailableBytes: Int64(disk?.availableBytes ?? 0))
    }

    /// A `Name:   123 kB` line of /proc/meminfo, or 0.
    package static func kibibytes(_ name: String, in meminfo: String) -> Int64 {
        for line in meminfo.split(separator: "\n") where line.hasPrefix(name + ":") {
            return Int64(line.dropFirst(name.count + 1).split(separator: " ").first ?? "") ?? 0
        }
        return 0
    }
}
