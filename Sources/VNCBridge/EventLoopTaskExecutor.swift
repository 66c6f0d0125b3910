import NIOCore

/// Runs a task's jobs on one NIO event loop. Both sockets of a relay live on the same event
/// loop; with this preference the relay's loops run there too, so passing a buffer from one
/// socket to the other never wakes another thread (measured: without it every message crossed
/// to Swift's global executor and back, twice per round trip, which cost more than the
/// copying).
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
