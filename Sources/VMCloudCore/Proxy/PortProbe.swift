import Glibc
import NIOCore
import NIOPosix

/// Does a TCP port answer? One connect with a deadline, closed at once. On libvirt's NAT
/// network a connect reaches the guest itself, so success means its service listens (QEMU's
/// user-mode forwarding would accept on the host's side whatever the guest does).
package enum PortProbe {
    package enum Outcome: Sendable, Equatable {
        case open
        /// Why not: refused, unreachable, timed out (the system's words).
        case closed(String)
    }

    package static func probe(host: String, port: Int, timeout: TimeAmount, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async -> Outcome {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .connect(host: host, port: port).get()
            try? await channel.close()
            return .open
        } catch {
            return .closed(describe(error))
        }
    }

    package static func describe(_ error: Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if let error = error as? ChannelError, case .connectTimeout = error { return "connect timed out" }
        if let error = error as? NIOConnectionError {
            return error.connectionErrors.first.map { describe($0.error) } ?? "\(error)"
        }
        return "\(error)"
    }
}
