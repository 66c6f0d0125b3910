// Port I/O: open (and reopen) the virtio port, poll it, split lines, write replies.
//
// Replies come from other threads through the Outbox; this loop is its only writer.
//
// virtio-serial semantics (drivers/char/virtio_console.c): while no host process is connected
// to the chardev, poll() reports POLLHUP, read() returns 0 and a non-blocking write() fails with
// EAGAIN. If the device goes away, read/write fail with ENODEV and the port must be reopened.
import Glibc
import AgentProtocol

final class AgentLoop {
    static let portName = "org.vmcloud.agent.0"
    /// Stop reading requests while this much output is unsent (a host that never reads must not
    /// make the agent grow without bound).
    static let outboxLimit = 1 << 20
    static let retryMilliseconds = 200

    private let portOverride: String?
    private let handler: MessageHandler
    private var fd: Int32 = -1
    private var splitter = AgentLineSplitter()
    private let outbox: Outbox
    /// A hello is due: at start and after every reconnect, built when the port is writable so
    /// it carries the current IP.
    private var greetingDue = true
    private var hostConnected = false

    init(portOverride: String?, handler: MessageHandler, outbox: Outbox) {
        self.portOverride = portOverride
        self.handler = handler
        self.outbox = outbox
    }

    func run() -> Never {
        while true {
            if fd < 0 { openPort() }
            step()
        }
    }

    /// Blocks until the port exists and opens; logs only when the reason for waiting changes.
    private func openPort() {
        var lastProblem = ""
        while true {
            let problem: String
            if let path = portOverride ?? PortDiscovery.devicePath(forPortNamed: Self.portName) {
                let opened = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                if opened >= 0 {
                    log("opened \(path)")
                    fd = opened
                    return
                }
                problem = "cannot open \(path): \(errnoText())"
            } else {
                problem = "waiting for virtio port \(Self.portName) in \(PortDiscovery.sysClass)"
            }
            if problem != lastProblem { log(problem); lastProblem = problem }
            sleepMilliseconds(Self.retryMilliseconds)
        }
    }

    private func closePort(_ why: String) {
        log("closing port: \(why)")
        close(fd)
        fd = -1
        disconnected()
    }

    /// Whatever was half received or unsent belonged to the previous host connection.
    private func disconnected() {
        if hostConnected { log("host disconnected") }
        hostConnected = false
        splitter = AgentLineSplitter()
        outbox.clear()
        greetingDue = true
    }

    private func step() {
        var events = Int16(POLLOUT)
        if !outbox.hasPending && !greetingDue { events = 0 }
        if outbox.pendingControlBytes < Self.outboxLimit { events |= Int16(POLLIN) }
        var pfds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: outbox.wakeFD, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&pfds, 2, 1000)
        if ready < 0 {
            if errno != EINTR { closePort("poll: \(errnoText())") }
            return
        }
        if pfds[1].revents != 0 { outbox.drainWakeups() }
        if ready == 0 || pfds[0].revents == 0 { return }
        let revents = Int32(pfds[0].revents)
        if revents & (POLLERR | POLLNVAL) != 0 { closePort("poll reported an error"); return }
        // Data the host sent just before leaving is still worth reading.
        if revents & POLLIN != 0, !readAvailable() { return }
        if revents & POLLHUP != 0 {
            // No host on the other end: nothing to do but wait for one.
            if hostConnected || outbox.hasPending { disconnected() }
            sleepMilliseconds(Self.retryMilliseconds)
            return
        }
        if revents & POLLOUT != 0 { flush() }
    }

    /// Reads what is there and handles complete lines. False when the port had to be closed.
    private func readAvailable() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return true }
            closePort("read: \(errnoText())")
            return false
        }
        if n == 0 {
            // EOF without POLLHUP (e.g. a pipe given with --port): back off instead of spinning.
            if !hostConnected { sleepMilliseconds(Self.retryMilliseconds) }
            return true
        }
        markConnected()
        for item in splitter.append(chunk[0..<n]) {
            handler.handle(item)
        }
        return true
    }

    private func markConnected() {
        if !hostConnected { log("host connected"); hostConnected = true }
    }

    private func flush() {
        if greetingDue {
            greetingDue = false
            let hello = handler.hello()
            log("sending hello (ip \(hello.ip ?? "none"))")
            outbox.sendFirst(hello)
        }
        var failure: String?
        var wrote = false
        outbox.flush { bytes in
            while true {
                let n = write(fd, bytes.baseAddress, bytes.count)
                if n > 0 { wrote = true }
                if n >= 0 { return n }
                switch errno {
                case EINTR: continue
                case EAGAIN: return 0  // host not reading right now; poll tells us when
                default: failure = "write: \(errnoText())"; return nil
                }
            }
        }
        if wrote { markConnected() }
        if let failure { closePort(failure) }
    }
}
