/// The pusher of the one reconciler: whatever changes what a VM should be (an API call, a
/// guest's hello, a finished action) kicks it, and kicks that come while a pass runs fold into
/// one more pass.
package final class PassTrigger: Sendable {
    package let kicks: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    package init() {
        (kicks, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    package func kick() { continuation.yield() }
}
