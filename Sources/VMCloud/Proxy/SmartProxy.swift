import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import VMCloudCore

/// The smart proxy's parts, made once by ApplianceParts.wire: the waker (start once, wait, idle
/// accounting), the forwarder (the one HTTP client) and the idle stopper; their routes (the
/// resources' and the keyed viewers') and the services that run for the server's lifetime.
struct SmartProxy: Sendable {
    struct Settings: Sendable {
        /// Seconds a request waits for its resource's VM to start and its port to answer.
        var startTimeout: TimeInterval = 120
        /// Seconds for the upstream's response head and between reads of its body.
        var upstreamTimeout: TimeInterval = 60
        var idleSweepInterval: TimeInterval = 1
    }

    let machines: MachineService
    let waker: ResourceWaker
    let forwarder: UpstreamForwarder
    let stopper: IdleStopper
    /// The appliance's address as users reach it (config `publicURL`), if set.
    let publicURL: String?

    var store: Store { machines.store }

    init(machines: MachineService, settings: Settings = Settings(), publicURL: String? = nil, logger: Logger) {
        self.machines = machines
        self.publicURL = publicURL
        waker = ResourceWaker(machines: machines, settings: .init(startTimeout: settings.startTimeout), logger: logger)
        forwarder = UpstreamForwarder(upstreamTimeout: settings.upstreamTimeout)
        stopper = IdleStopper(waker: waker, interval: settings.idleSweepInterval, logger: logger)
    }

    func register(on router: APIRouter) {
        ResourceRoutes(proxy: self).register(on: router)
        ProxyRoutes(proxy: self).register(on: router)
        ViewerProxyRoutes(proxy: self).register(on: router)
    }

    /// WebSocket upgrades on the proxy paths (the server's WebSocket router).
    func registerWebSocket(on router: Router<ViewerWebSocketContext>, authenticator: Authenticator) {
        ProxyWebSocketRoutes(proxy: self, authenticator: authenticator).register(on: router)
        ViewerProxyWebSocketRoutes(proxy: self).register(on: router)
    }

    var services: [any Service] { [forwarder, stopper] }
}
