// Small POSIX helpers: the agent avoids Foundation's file APIs to stay static and small.
import Glibc

/// One line per event on stderr (the serial console in the test image). A single write(2)
/// keeps lines from interleaving.
func log(_ text: String) {
    var bytes = Array("guest-agent: \(text)\n".utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

struct SystemError: Error, CustomStringConvertible {
    let description: String

    /// Captures errno right away, before anything else can overwrite it.
    static func errno(_ what: String) -> SystemError {
        let code = Glibc.errno
        return SystemError(description: "\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}

func errnoText() -> String {
    let code = errno
    return "\(String(cString: strerror(code))) (errno \(code))"
}

/// Reads a whole (small) file; nil when it does not exist, throws on other errors or when it
/// is larger than `limit`.
func readFile(_ path: String, limit: Int = 1 << 20) throws -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT { return nil }
        throw SystemError.errno("open \(path)")
    }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemError.errno("read \(path)")
        }
        if n == 0 { return result }
        result.append(contentsOf: chunk[0..<n])
        guard result.count <= limit else {
            throw SystemError(description: "\(path) is larger than \(limit) bytes")
        }
    }
}

/// Writes all of `bytes` to a blocking fd, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemError.errno("write \(what)")
        }
        offset += n
    }
}

/// mkdir -p for the state file's directory (/run is an empty tmpfs on every boot).
func makeDirectories(_ path: String) throws {
    var prefix = ""
    for component in path.split(separator: "/") {
        prefix += "/" + component
        if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
            throw SystemError.errno("mkdir \(prefix)")
        }
    }
}

func sleepMilliseconds(_ ms: Int) {
    usleep(useconds_t(ms * 1000))
}
