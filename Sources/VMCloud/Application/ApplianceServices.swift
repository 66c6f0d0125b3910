import AudioRelay
import Libvirt
import ServiceLifecycle
import VMCloudCore

/// Runs the one reconciler of every VM for the lifetime of the server.
struct VMEngineService: Service {
    let engine: VMEngine
    let news: AsyncStream<DomainNews>

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await engine.run(news: news) }
    }
}

/// Runs the one crash watch over all our domains for the lifetime of the server.
struct DomainWatchService: Service {
    let watch: DomainWatch

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await watch.run() }
    }
}

/// Holds libvirt's connection, the guest agent sessions and the audio daemon open until the
/// server shuts down, then closes them (the VMs keep running: a restarted appliance adopts them).
struct ClosingService: Service {
    let libvirt: LibvirtClient
    let agents: GuestAgents
    let audio: AudioRelay?

    func run() async throws {
        try? await gracefulShutdown()
        await agents.closeAll()
        await audio?.shutdown()
        await libvirt.close()
    }
}
