import AudioRelay
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import VMCloudCore

/// A VM's audio for the holder of one of its handle's tokens (audio, control or view):
/// `GET /audio/{token}` (Ogg/Opus over HTTP), `GET /audio/{token}/ws` (one Opus packet per
/// WebSocket message) and `GET /audio/{token}/player` (a page that plays it). Streams end when
/// the token's access ends, through the same sweep that closes viewer sessions.
struct AudioRoutes {
    let access: ViewerAccess
    /// nil when the appliance runs with `--no-audio`.
    let relay: AudioRelay?
    /// The sink VM `id` plays into.
    let sinkName: @Sendable (Int64) -> String

    func register(on router: APIRouter) {
        router.get("/audio/:token", access: .open) { request, context -> Response in
            let (grant, channel) = try await resolve(context.parameters)
            return try AudioStreaming.oggResponse(channel) { [access] in
                let session = access.sessions.open(grant)
                return ({ await session.revoked() }, { access.sessions.close(session) })
            }
        }
        router.get("/audio/:token/player", access: .open) { _, context -> Response in
            _ = try await resolve(context.parameters)
            return try InstalledFiles.htmlPage("static/audio.html")
        }
        // Reached when the WebSocket router did not upgrade: a bad token, or not a WebSocket.
        router.get("/audio/:token/ws", access: .open) { _, context -> Response in
            _ = try await resolve(context.parameters)
            throw APIError(status: .upgradeRequired, code: "upgrade_required",
                           message: "this endpoint sends Opus packets over WebSocket; GET /audio/{token} is the Ogg stream")
        }
    }

    func registerWebSocket(on router: Router<ViewerWebSocketContext>) {
        router.ws("/audio/:token/ws") { _, context in
            _ = try await resolve(context.parameters)
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            // Checked again: access may have ended between the upgrade and now.
            guard let (grant, channel) = try? await resolve(context.requestContext.parameters) else {
                try await outbound.close(.unknown(4001), reason: "access revoked")
                return
            }
            let session = access.sessions.open(grant)
            defer { access.sessions.close(session) }
            try await AudioStreaming.webSocket(channel, inbound: inbound, outbound: outbound, until: { await session.revoked() })
        }
    }

    /// The grant of the path's token and the channel of its VM's sink, or the error refusing it.
    private func resolve(_ parameters: Parameters) async throws -> (ViewerAccess.Grant, AudioChannel) {
        let grant = try await access.grant(token: parameters.get("token"))
        guard let relay else {
            throw APIError(status: .notFound, code: "audio_off", message: "this appliance runs without audio (serve --no-audio)")
        }
        let sink = sinkName(grant.vmId)
        if let channel = relay.channel(for: sink) { return (grant, channel) }
        // A VM adopted from an earlier run of the appliance: its sink is known to PulseAudio
        // (or is made again) but not yet to this relay.
        do {
            try await relay.ensureSink(sink)
        } catch {
            throw APIError(status: .serviceUnavailable, code: "audio_unavailable", message: "the VM's audio is not available: \(error)")
        }
        guard let channel = relay.channel(for: sink) else {
            throw APIError(status: .serviceUnavailable, code: "audio_unavailable", message: "the VM's audio is not available")
        }
        return (grant, channel)
    }
}
