// pthread primitives. The agent links statically with FoundationEssentials + Glibc only, so it
// uses plain pthreads instead of Dispatch or Swift concurrency's executors.
import Glibc

/// A mutex with one condition variable: enough for every wait in the agent.
final class Lock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        // CLOCK_MONOTONIC so a guest clock jump (NTP, host resume) cannot stretch a timeout.
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    func broadcast() { pthread_cond_broadcast(cond) }

    /// Waits (lock held) until `ready()` or `deadline`; returns `ready()`'s last value.
    func wait(until deadline: Deadline, _ ready: () -> Bool) -> Bool {
        while !ready() {
            guard !deadline.expired else { return false }
            var ts = deadline.timespecValue
            pthread_cond_timedwait(cond, mutex, &ts)
        }
        return true
    }
}

/// A point on the monotonic clock.
struct Deadline: Sendable {
    let nanoseconds: UInt64

    static var now: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    init(seconds: Double) { nanoseconds = Deadline.now + UInt64(max(0, seconds) * 1e9) }

    var expired: Bool { Deadline.now >= nanoseconds }
    /// Milliseconds left, clamped to what poll() takes.
    var remainingMilliseconds: Int32 {
        let now = Deadline.now
        return now >= nanoseconds ? 0 : Int32(min((nanoseconds - now) / 1_000_000 + 1, UInt64(Int32.max)))
    }
    var timespecValue: timespec {
        timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }
}

/// Milliseconds since the Unix epoch (wall clock), for `page.time`.
func epochMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a detached thread; the agent's threads live as long as the process.
func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
        body.run()
        return nil
    }, box)
    guard rc == 0 else {
        log("fatal: cannot start thread \(name): error \(rc)")
        exit(1)
    }
    pthread_detach(thread)
}

/// A serial job queue on its own thread: the jobs that may block (browser requests, captures)
/// run here so the port loop keeps answering.
final class SerialQueue: @unchecked Sendable {
    private let lock = Lock()
    private var jobs: [@Sendable () -> Void] = []
    let limit: Int

    init(name: String, limit: Int) {
        self.limit = limit
        startThread(name) { [self] in run() }
    }

    /// False when `limit` jobs are already waiting (the caller reports "busy").
    @discardableResult
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        lock.withLock {
            guard jobs.count < limit else { return false }
            jobs.append(job)
            lock.broadcast()
            return true
        }
    }

    private func run() -> Never {
        while true {
            var job: (@Sendable () -> Void)?
            lock.withLock {
                _ = lock.wait(until: Deadline(seconds: 3600)) { !jobs.isEmpty }
                if !jobs.isEmpty { job = jobs.removeFirst() }
            }
            job?()
        }
    }
}
