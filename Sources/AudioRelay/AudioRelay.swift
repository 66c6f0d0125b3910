import Foundation
import Logging
import Synchronization

/// The appliance's audio: one PulseAudio daemon, a null sink per VM (QEMU plays the VM's sound
/// card into it) and an `AudioChannel` per sink that listeners subscribe to.
///
/// The daemon is the one answering on `socketPath`, started by the relay if none does. If it
/// dies, the relay starts a new one, loads every VM's sink again and resumes the captures that
/// have listeners (their sequence numbers and timestamps carry on).
public final class AudioRelay: Sendable {
    public let server: PulseServer
    private let connection: PulseConnection
    private let logger: Logger
    private let sinks = Mutex<[String: AudioChannel]>([:])
    private let recovering = Mutex(false)
    /// Set by `shutdown()`: the daemon going away is then expected, not something to repair.
    private let isShutDown = Mutex(false)

    /// - Parameters:
    ///   - socketPath: where the daemon's native-protocol socket is (QEMU connects there too).
    ///   - runtimeDirectory: the private daemon's config, state and log.
    public init(socketPath: String, runtimeDirectory: String, maxOpenFiles: Int = 4096, logger: Logger) throws {
        server = PulseServer(socketPath: socketPath, runtimeDirectory: runtimeDirectory, maxOpenFiles: maxOpenFiles)
        self.logger = logger
        let lost = Mutex<(@Sendable () -> Void)?>(nil)
        connection = try PulseConnection(socketPath: socketPath, clientName: "vmcloud-appliance") { state in
            if case .failed = state { lost.withLock { $0 }?() }
        }
        lost.withLock { $0 = { [weak self] in self?.connectionLost() } }
    }

    /// The socket QEMU's `<audio type='pulseaudio' serverName=...>` must name.
    public var socketPath: String { server.socketPath }

    /// Starts (or finds) the daemon and connects to it.
    ///
    /// Throws only when audio cannot work on this host at all (no `pulseaudio` executable, a
    /// socket path PulseAudio cannot use). A daemon that fails or dies during the start is a
    /// fault like any later one: the relay logs it and recovers in the background (a new
    /// daemon, every second or so), and the appliance goes on starting.
    ///
    /// - Parameter afterDaemonStarted: runs between the daemon answering and the relay
    ///   connecting (tests break the daemon there).
    public func start(afterDaemonStarted: @Sendable () async -> Void = {}) async throws {
        do {
            let started = try await server.start()
            await afterDaemonStarted()
            try await connection.connect()
            logger.info("audio relay connected to PulseAudio", metadata: [
                "socket": "\(server.socketPath)", "daemon": "\(started ? "started" : "found running")"])
        } catch let error as PulseError where error.meansNoAudioOnThisHost {
            throw error
        } catch {
            logger.error("PulseAudio failed while the audio relay started; recovering in the background", metadata: ["error": "\(error)"])
            connectionLost()
        }
    }

    /// Makes sure the daemon has the null sink `name` (a VM's), and a channel for it.
    public func ensureSink(_ name: String) async throws {
        if try await connection.sinkOwnerModule(name: name) == nil {
            _ = try await connection.loadNullSink(name: name)
        }
        _ = channel(for: name, create: true)
    }

    /// Removes the VM's sink and ends its listeners. Errors are logged: a missing sink or daemon
    /// leaves nothing to remove.
    public func removeSink(_ name: String) async {
        sinks.withLock { $0.removeValue(forKey: name) }?.close()
        do {
            if let module = try await connection.sinkOwnerModule(name: name) {
                try await connection.unloadModule(index: module)
            }
        } catch {
            logger.warning("could not remove a VM's audio sink", metadata: ["sink": "\(name)", "error": "\(error)"])
        }
    }

    /// The channel of sink `name`, if the relay manages that sink.
    public func channel(for name: String) -> AudioChannel? {
        channel(for: name, create: false)
    }

    /// The sinks the relay manages.
    public var sinkNames: [String] { sinks.withLock { Array($0.keys) } }

    /// Every sink in the daemon, including ones this relay does not manage (left by an earlier
    /// run of the appliance that used the same daemon).
    public func daemonSinkNames() async throws -> [String] {
        try await connection.sinkNames()
    }

    /// Ends every listener and stops a daemon this relay started.
    public func shutdown() async {
        isShutDown.withLock { $0 = true }
        for channel in sinks.withLock({ Array($0.values) }) { channel.close() }
        await server.stop()
    }

    private func channel(for name: String, create: Bool) -> AudioChannel? {
        sinks.withLock { sinks in
            if let existing = sinks[name] { return existing }
            guard create else { return nil }
            let channel = AudioChannel(sinkName: name, connection: connection)
            sinks[name] = channel
            return channel
        }
    }

    /// PulseAudio went away (crash, kill, restart): bring a daemon back, re-create the sinks and
    /// resume capture. Runs once at a time; retries every second until it succeeds.
    private func connectionLost() {
        guard !isShutDown.withLock({ $0 }) else { return }
        let first = recovering.withLock { busy in
            defer { busy = true }
            return !busy
        }
        guard first else { return }
        logger.warning("PulseAudio connection lost; recovering")
        Task {
            defer { recovering.withLock { $0 = false } }
            var failures = 0
            while !Task.isCancelled, !isShutDown.withLock({ $0 }) {
                do {
                    try await server.start()
                    try await connection.connect()
                    for name in sinkNames {
                        if try await connection.sinkOwnerModule(name: name) == nil {
                            _ = try await connection.loadNullSink(name: name)
                        }
                    }
                    for channel in sinks.withLock({ Array($0.values) }) { channel.resume() }
                    logger.info("PulseAudio back; VM sinks re-created", metadata: ["sinks": "\(sinkNames.count)"])
                    return
                } catch {
                    // A daemon that cannot start at all would otherwise fill the log every second.
                    failures += 1
                    let pause = Duration.seconds(min(1 << min(failures - 1, 4), 10))
                    logger.warning("PulseAudio recovery failed; retrying", metadata: ["error": "\(error)", "pause": "\(pause)"])
                    try? await Task.sleep(for: pause)
                }
            }
        }
    }
}
