// Counts the input events the guest kernel delivers (evdev), so the host can check on the VM side
// that keyboard and pointer events sent over VNC arrived. Reported in every `state` reply.
import Glibc

final class InputWatcher: @unchecked Sendable {
    static let directory = "/dev/input"
    /// New devices (hotplug, a late module load) are picked up this often.
    static let rescanSeconds = 2.0

    struct Counts {
        var keys: UInt64 = 0
        var pointer: UInt64 = 0
    }

    private let lock = Lock()
    private var counted = Counts()

    /// Starts watching right away, on its own thread. Without /dev/input (the agent running on
    /// a host in tests) the counts simply stay 0.
    init() {
        startThread("input") { [self] in run() }
    }

    var counts: Counts { lock.withLock { counted } }

    private func run() -> Never {
        var devices: [String: Int32] = [:]  // path -> open fd
        var failed: Set<String> = []  // open errors already logged
        var nextScan = Deadline(seconds: 0)
        while true {
            if nextScan.expired {
                scan(&devices, &failed)
                nextScan = Deadline(seconds: Self.rescanSeconds)
            }
            // With no devices this is just a sleep until the next scan.
            var pfds = devices.values.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&pfds, nfds_t(pfds.count), nextScan.remainingMilliseconds) > 0 else { continue }
            for pfd in pfds where pfd.revents != 0 && !readEvents(pfd.fd) {
                // Unplugged (ENODEV): forget it; a device that comes back is reopened by a scan.
                close(pfd.fd)
                devices = devices.filter { $0.value != pfd.fd }
            }
        }
    }

    /// Opens every /dev/input/event* not open yet.
    private func scan(_ devices: inout [String: Int32], _ failed: inout Set<String>) {
        guard let dir = opendir(Self.directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            let path = "\(Self.directory)/\(name)"
            guard name.hasPrefix("event"), devices[path] == nil else { continue }
            let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            if fd < 0 {
                if failed.insert(path).inserted { log("cannot open \(path): \(errnoText())") }
                continue
            }
            let device = (try? readFile("/sys/class/input/\(name)/device/name", limit: 4096)).map {
                String(decoding: $0, as: UTF8.self).trimmingNewlines()
            }
            log("counting input events of \(path) (\(device ?? "unnamed"))")
            devices[path] = fd
        }
    }

    /// Reads what is queued and counts it. False when the device is gone.
    private func readEvents(_ fd: Int32) -> Bool {
        // struct input_event: struct timeval time; __u16 type; __u16 code; __s32 value
        // (24 bytes on 64-bit). evdev only ever returns whole events.
        let size = MemoryLayout<timeval>.size + 8
        var buffer = [UInt8](repeating: 0, count: 64 * size)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return errno == EAGAIN || errno == EINTR }
        if n == 0 { return false }
        var add = Counts()
        buffer.withUnsafeBytes { raw in
            for start in stride(from: 0, to: n - size + 1, by: size) {
                let type = raw.loadUnaligned(fromByteOffset: start + size - 8, as: UInt16.self)
                let code = raw.loadUnaligned(fromByteOffset: start + size - 6, as: UInt16.self)
                let value = raw.loadUnaligned(fromByteOffset: start + size - 4, as: Int32.self)
                switch type {
                // EV_KEY: count presses only (1; 0 is a release, 2 autorepeat). Codes from
                // BTN_MISC (0x100) up are buttons: mouse, tablet, joystick.
                case 0x01 where value == 1:
                    if code < 0x100 { add.keys += 1 } else { add.pointer += 1 }
                // EV_REL, EV_ABS: one per axis that moved (the kernel drops unchanged values).
                case 0x02, 0x03:
                    add.pointer += 1
                default:
                    break  // EV_SYN, EV_MSC (scan codes), LEDs, ...
                }
            }
        }
        lock.withLock {
            counted.keys += add.keys
            counted.pointer += add.pointer
        }
        return true
    }
}
