import Libvirt
import Logging
import VMCloudCore

/// The start-up steps that need libvirtd, which may still be (re)starting, as after a host
/// boot or a daemon restart.
enum LibvirtStartup {
    /// Connects, waiting up to a minute; then fails with libvirt's own reason.
    static func connect(_ libvirt: LibvirtClient, logger: Logger) async throws {
        try await whileLibvirtIsDown("connecting to \(libvirt.uri)", logger: logger, retryAnyError: true) { try await libvirt.connect() }
    }

    /// Starts the guests' NAT network if it is defined but not running.
    static func ensureNetwork(_ network: String, libvirt: LibvirtClient, logger: Logger) async throws {
        do {
            let started = try await whileLibvirtIsDown("checking network \(network)", logger: logger) {
                try await libvirt.ensureNetworkActive(name: network)
            }
            if started { logger.info("started libvirt network", metadata: ["network": "\(network)"]) }
        } catch {
            throw ServeConfig.Invalid(description: "libvirt network '\(network)' is not usable (\(error)); install dnsmasq-base or run with --network user")
        }
    }

    /// Runs a start-up step that needs libvirt, again every 2 s for up to a minute while libvirtd
    /// is down or restarting (any error when `retryAnyError`); other errors are thrown at once.
    static func whileLibvirtIsDown<T: Sendable>(
        _ what: String, logger: Logger, retryAnyError: Bool = false, _ step: () async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                return try await step()
            } catch {
                guard retryAnyError || isLibvirtUnreachable(error), ContinuousClock.now < deadline else { throw error }
                logger.warning("libvirt not reachable yet; retrying", metadata: ["step": "\(what)", "error": "\(error)"])
                try await Task.sleep(for: .seconds(2))
            }
        }
    }
}
