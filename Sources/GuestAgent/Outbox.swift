// Everything the agent sends goes through one Outbox; only the port loop writes it to the port,
// whole lines in order, so lines from different threads never interleave.
//
// Two queues: `control` (replies, hello, crash reports) always goes before `bulk` (page
// announcements and their blob chunks), so a megabyte capture never delays a pong. A line
// already half written is finished first. Bulk producers block while too much is queued, which
// keeps a 40 MiB capture from sitting in memory twice when the host reads slowly.
import Glibc
import AgentProtocol

final class Outbox: @unchecked Sendable {
    static let bulkLimit = 256 * 1024

    private let lock = Lock()
    private var control: [[UInt8]] = []
    private var controlBytes = 0
    private var bulk: [[UInt8]] = []
    private var bulkBytes = 0
    private var current: [UInt8] = []
    private var currentOffset = 0
    /// Bumped when the host connection goes away (queued bulk belongs to the old host) and on
    /// every reset (captures of the old session must not outlive it).
    private var generation: UInt64 = 0
    /// Writing a byte here wakes the port loop's poll().
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            log("fatal: pipe: \(errnoText())")
            exit(1)
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    /// The fd the port loop polls for "something new to send".
    var wakeFD: Int32 { wakeRead }

    func drainWakeups() {
        var buf = [UInt8](repeating: 0, count: 64)
        while buf.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)  // a full pipe already means "wake up"
    }

    /// Queues a reply or notice; never blocks.
    func send(_ message: AgentMessage) {
        let line = message.encodedLine()
        lock.withLock {
            control.append(line)
            controlBytes += line.count
            lock.broadcast()
        }
        wake()
    }

    var currentGeneration: UInt64 { lock.withLock { generation } }

    /// Queues one bulk line, waiting for room. False when the host connection changed since
    /// `generation` or no room came before `deadline`: the caller abandons the rest.
    func sendBulk(_ message: AgentMessage, generation expected: UInt64, deadline: Deadline) -> Bool {
        let line = message.encodedLine()
        let queued = lock.withLock {
            _ = lock.wait(until: deadline) { generation != expected || bulkBytes < Self.bulkLimit }
            guard generation == expected, bulkBytes < Self.bulkLimit else { return false }
            bulk.append(line)
            bulkBytes += line.count
            return true
        }
        if queued { wake() }
        return queued
    }

    /// Bytes of unsent control lines (the loop stops reading requests above a limit).
    var pendingControlBytes: Int { lock.withLock { controlBytes } }
    var hasPending: Bool { lock.withLock { currentOffset < current.count || !control.isEmpty || !bulk.isEmpty } }

    /// Puts a line ahead of everything not yet started (the hello after a reconnect).
    func sendFirst(_ message: AgentMessage) {
        let line = message.encodedLine()
        lock.withLock {
            control.insert(line, at: 0)
            controlBytes += line.count
        }
    }

    /// Writes as much as `write` accepts; `write` returns bytes written, 0 for "try later",
    /// or nil after a fatal error.
    func flush(_ write: (UnsafeRawBufferPointer) -> Int?) {
        while true {
            let done: Bool = lock.withLock {
                if currentOffset >= current.count {
                    current = []
                    currentOffset = 0
                    if !control.isEmpty {
                        current = control.removeFirst()
                        controlBytes -= current.count
                    } else if !bulk.isEmpty {
                        current = bulk.removeFirst()
                        bulkBytes -= current.count
                        lock.broadcast()  // room for a blocked bulk producer
                    } else {
                        return true
                    }
                }
                return false
            }
            if done { return }
            // Only this thread touches `current` outside the lock.
            let n = current.withUnsafeBytes { write(UnsafeRawBufferPointer(rebasing: $0[currentOffset...])) }
            guard let n, n > 0 else { return }
            lock.withLock { currentOffset += n }
        }
    }

    /// A reset: captures of the old session must never reach the host after it. Drops the
    /// queued bulk lines (not the one being written, which the port needs whole) and bumps the
    /// generation, so producers still holding the old one are refused from now on.
    func abandonBulk() {
        lock.withLock {
            bulk.removeAll()
            bulkBytes = 0
            generation &+= 1
            lock.broadcast()
        }
    }

    /// The host went away: drop everything queued and abandon bulk transfers in progress.
    func clear() {
        lock.withLock {
            control.removeAll()
            bulk.removeAll()
            controlBytes = 0
            bulkBytes = 0
            current = []
            currentOffset = 0
            generation &+= 1
            lock.broadcast()
        }
    }
}
