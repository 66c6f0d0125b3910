import Libvirt
import Logging
import Synchronization

/// What the watch tells the VM engine.
package enum DomainNews: Sendable, Equatable {
    /// An event from libvirt: a domain's lifecycle, or the connection lost or back.
    case libvirt(LibvirtEvent)
    /// These domains' QEMU processes are gone, which libvirt reports only a second or two later.
    case qemuDied(Set<String>)
}

/// The one crash watch over this appliance's domains, pool VMs' and generic VMs' alike: it
/// consumes libvirt's event stream (which has one consumer) and polls the QEMU pid files every
/// 200 ms, and hands every piece of news to each subscription (the VM engine's), which reads it
/// when it is ready: news waits in the stream.
package final class DomainWatch: Sendable {
    private let libvirt: LibvirtClient
    /// `vmcloud-<instance>-`: pool and generic VM domains both start with it.
    private let prefix: String
    /// Whether a QEMU that vanished is also noticed by its pid file, not only by libvirt's
    /// event. Off only in tests that must prove the event path on its own.
    private let qemuPidPoll: Bool
    private let liveness = QemuLiveness()
    private let subscribers = Mutex<[AsyncStream<DomainNews>.Continuation]>([])

    package init(libvirt: LibvirtClient, instanceId: String, qemuPidPoll: Bool = !TestSwitch.noQemuPidPoll) {
        self.libvirt = libvirt
        self.prefix = "vmcloud-\(instanceId)-"
        self.qemuPidPoll = qemuPidPoll
    }

    /// A stream of all news from now on.
    package func subscribe() -> AsyncStream<DomainNews> {
        let (stream, continuation) = AsyncStream.makeStream(of: DomainNews.self)
        subscribers.withLock { $0.append(continuation) }
        return stream
    }

    /// Runs until cancelled. Not restartable: libvirt's event stream has a single consumer.
    package func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in self.libvirt.events { self.tell(.libvirt(event)) }
            }
            if qemuPidPoll {
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(200))
                        let dead = self.liveness.deadDomains(prefix: self.prefix)
                        if !dead.isEmpty { self.tell(.qemuDied(dead)) }
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func tell(_ news: DomainNews) {
        for subscriber in subscribers.withLock({ $0 }) { subscriber.yield(news) }
    }
}
