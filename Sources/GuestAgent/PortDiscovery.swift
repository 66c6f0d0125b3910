// Finds the virtio-serial port by its name. busybox mdev creates no /dev/virtio-ports/<name>
// symlinks, so the agent reads /sys/class/virtio-ports/vportNpM/name itself.
import Glibc

enum PortDiscovery {
    static let sysClass = "/sys/class/virtio-ports"

    /// "/dev/vportNpM" of the port called `name`, or nil when it is not there (yet): the
    /// virtio_console module may still be loading.
    static func devicePath(forPortNamed name: String) -> String? {
        guard let dir = opendir(sysClass) else { return nil }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let port = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            // Only vportNpM entries; this also keeps "." / ".." and odd names out of /dev paths.
            guard port.hasPrefix("vport"), !port.contains("/") else { continue }
            guard let bytes = try? readFile("\(sysClass)/\(port)/name", limit: 4096) else { continue }
            let portName = String(decoding: bytes, as: UTF8.self)
            if portName.trimmingNewlines() == name { return "/dev/\(port)" }
        }
        return nil
    }
}

extension String {
    func trimmingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
