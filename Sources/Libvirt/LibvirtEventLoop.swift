import CLibvirt
import Foundation

/// libvirt's process-wide event loop: events, keepalive and close detection of remote
/// connections are driven by it. It must be registered before the first `virConnectOpen` and
/// only once per process, so it is a lazily initialised singleton with its own thread (never a
/// NIO event loop or a cooperative-pool thread, because `virEventRunDefaultImpl` blocks).
enum LibvirtEventLoop {
    /// Swift runs a global's initialiser exactly once, thread-safely.
    private static let started: Bool = {
        // Required before other libvirt calls in a multi-threaded program.
        _ = virInitialize()
        // libvirt's default handler prints every error to stderr; we report errors ourselves.
        virSetErrorFunc(nil) { _, _ in }
        guard virEventRegisterDefaultImpl() == 0 else {
            let error = LibvirtError.takeLast(operation: "virEventRegisterDefaultImpl")
            fatalError("cannot register libvirt's event loop: \(error)")
        }
        let thread = Thread {
            while true {
                // Returns after each iteration; -1 only on internal poll errors, keep going.
                _ = virEventRunDefaultImpl()
            }
        }
        thread.name = "libvirt-events"
        thread.start()
        return true
    }()

    /// Makes sure the event loop exists; cheap after the first call.
    static func ensureRunning() {
        _ = started
    }
}
