// Runs the real guest-agent binary with `--browser chromium` (headless, --no-sandbox as root) or
// `--browser file` and talks the protocol to it through a pseudo-terminal given as `--port`: the
// agent's open()/poll() loop treats the pty slave like a virtio port, the test holds the master.
import AgentProtocol
import Foundation
import Glibc

/// Where the binary is: GUEST_AGENT_BIN, else the one built next to this test binary (same
/// build, whatever its scratch path), else the debug build `make test` produces.
let agentBinary: String = {
    if let path = ProcessInfo.processInfo.environment["GUEST_AGENT_BIN"] { return path }
    if let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
       let slash = me.lastIndex(of: "/") {
        let sibling = String(me[..<slash]) + "/guest-agent"
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
    }
    return "/work/main/.build/debug/guest-agent"
}()
let chromiumBinary = ProcessInfo.processInfo.environment["CHROMIUM_BIN"] ?? "/usr/bin/chromium"

/// One captured page: its announcement and the reassembled blobs.
struct CapturedPage {
    var message: AgentMessage
    var screenshot: [UInt8]
    var mhtml: [UInt8]
    /// The MHTML with quoted-printable undone enough to search it (soft breaks, =3D).
    var mhtmlText: String {
        String(decoding: mhtml, as: UTF8.self)
            .replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=\n", with: "")
            .replacingOccurrences(of: "=3D", with: "=")
    }
}

final class AgentHarness: @unchecked Sendable {
    let process = Process()
    private let master: Int32
    private let slave: Int32
    private let condition = NSCondition()
    private var received: [AgentMessage] = []
    private var splitter = AgentLineSplitter()
    let logPath: String

    enum BrowserKind {
        /// Headless Chromium with DevTools on this port (and extra command-line flags).
        case chromium(devtoolsPort: UInt16, flags: String = "")
        /// The file browser, its state file in the test's directory.
        case file
    }

    convenience init(devtoolsPort: UInt16, name: String, chromiumFlags: String = "") throws {
        try self.init(name: name, browser: .chromium(devtoolsPort: devtoolsPort, flags: chromiumFlags))
    }

    init(name: String, browser: BrowserKind) throws {
        guard FileManager.default.isExecutableFile(atPath: agentBinary) else {
            throw TestFailure("no guest-agent at \(agentBinary): run `swift build` (or set GUEST_AGENT_BIN)")
        }
        if case .chromium = browser, !FileManager.default.isExecutableFile(atPath: chromiumBinary) {
            throw TestFailure("no Chromium at \(chromiumBinary): install Debian's `chromium` (scripts/setup.sh does)")
        }
        // posix_openpt/unlockpt/ptsname are not in Swift's Glibc module: the same via ioctls
        // (TIOCSPTLCK and TIOCGPTN are _IOW/_IOR macros Swift does not import; Linux values).
        let TIOCSPTLCK: UInt = 0x4004_5431, TIOCGPTN: UInt = 0x8004_5430
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, TIOCSPTLCK, &unlock) == 0, ioctl(master, TIOCGPTN, &number) == 0 else {
            throw TestFailure("cannot open a pseudo-terminal")
        }
        let slavePath = "/dev/pts/\(number)"
        // Keep a slave open so the pty never hangs up, and make it raw (no echo, no line editing).
        slave = open(slavePath, O_RDWR | O_NOCTTY)
        var attributes = termios()
        tcgetattr(slave, &attributes)
        cfmakeraw(&attributes)
        tcsetattr(slave, TCSANOW, &attributes)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("guest-agent-test-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        logPath = dir + "/agent.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: agentBinary)
        switch browser {
        case .chromium(let devtoolsPort, let flags):
            process.arguments = [
                "--port", slavePath, "--browser", "chromium", "--chromium", chromiumBinary,
                "--browser-user", String(cString: getpwuid(geteuid())!.pointee.pw_name),
                "--profile-dir", dir + "/profile", "--devtools-port", String(devtoolsPort),
                "--chromium-args", "--headless=new --no-sandbox --window-size=800,600" + (flags.isEmpty ? "" : " " + flags),
                "--load-timeout", "20",
            ]
        case .file:
            process.arguments = ["--port", slavePath, "--browser", "file", "--state-file", dir + "/state.json"]
        }
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        Thread.detachNewThread { [self] in readLoop() }
    }

    /// SIGTERM: the agent kills its Chromium's process group on the way out.
    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        close(slave)
        close(master)
    }

    func send(_ message: AgentMessage) {
        sendRaw(message.encodedLine())
    }

    func sendRaw(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    private func readLoop() {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(master, &chunk, chunk.count)
            guard n > 0 else { return }
            condition.lock()
            for item in splitter.append(chunk[0..<n]) {
                if case .line(let line) = item, let message = try? AgentMessage.decode(line: line) {
                    received.append(message)
                }
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Removes and returns the first message matching `match`, waiting up to `timeout`.
    func next(timeout: TimeInterval = 60, _ what: String, where match: (AgentMessage) -> Bool) throws -> AgentMessage {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let index = received.firstIndex(where: match) { return received.remove(at: index) }
            guard condition.wait(until: deadline) else {
                throw TestFailure("no \(what) within \(Int(timeout)) s; got \(received.map(\.type.rawValue)); agent log: \(logPath)")
            }
        }
    }

    /// The messages received and not taken yet that match, left in place.
    func pending(where match: (AgentMessage) -> Bool) -> [AgentMessage] {
        condition.lock()
        defer { condition.unlock() }
        return received.filter(match)
    }

    /// What the agent logged so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The answer to request `id` (or the error for it).
    func reply(to id: UInt64, timeout: TimeInterval = 60) throws -> AgentMessage {
        try next(timeout: timeout, "reply to \(id)") { $0.id == id && $0.type != .page && $0.type != .blob }
    }

    /// The next page announcement whose URL satisfies `url`, with its blobs reassembled.
    func page(timeout: TimeInterval = 60, url: (String) -> Bool) throws -> CapturedPage {
        let announce = try next(timeout: timeout, "page") { $0.type == .page && url($0.url ?? "") }
        var parts: [AgentMessage.BlobPart: [UInt8]] = [:]
        for part in AgentMessage.BlobPart.allCases {
            var bytes: [UInt8] = []
            while true {
                let chunk = try next(timeout: timeout, "\(part.rawValue) blob") { $0.type == .blob && $0.page == announce.page && $0.part == part }
                guard chunk.offset == bytes.count, let data = Data(base64Encoded: chunk.data ?? "") else {
                    throw TestFailure("bad \(part.rawValue) chunk at offset \(chunk.offset ?? -1) (have \(bytes.count))")
                }
                bytes += data
                if chunk.final == true { break }
            }
            parts[part] = bytes
        }
        return CapturedPage(message: announce, screenshot: parts[.screenshot] ?? [], mhtml: parts[.mhtml] ?? [])
    }

    /// PIDs of the agent's direct children (its Chromium).
    func childPIDs() -> [pid_t] {
        let me = process.processIdentifier
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == me ? pid : nil
        }
    }
}
