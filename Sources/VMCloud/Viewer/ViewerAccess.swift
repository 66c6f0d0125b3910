import Foundation
import Hummingbird
import Logging
import VMCloudCore
import VNCBridge

/// Who may open which VM's screen: checks viewer tokens against the store, remembers the open
/// bridge sessions under their grants, and ends those whose access has ended.
final class ViewerAccess: Sendable {
    /// What an open session was let in with.
    struct Grant: Hashable, Sendable {
        let tokenHash: String
        let handleId: Int64
        let vmId: Int64
        let scope: AccessScope
    }

    /// The links of a handle that holds a VM, as handle-status shows them.
    struct Links: Encodable, Equatable, Sendable {
        /// The worker's: screen and input.
        let url: String
        /// A supervisor's: screen only.
        let viewUrl: String
        /// A Tuner device's: the VM's audio as Ogg/Opus over HTTP (no screen).
        let audioUrl: String
        /// The same audio, one Opus packet per WebSocket message.
        let audioWsUrl: String
    }

    let tokens: AccessTokens
    let store: Store
    let sessions = BridgeSessions<Grant>()
    /// Where each VM's VNC server listens (QEMU's unix socket).
    let vncSocket: @Sendable (Int64) -> String
    /// The appliance's address as users reach it (config `publicURL`); nil: taken from each
    /// request's Host header.
    let publicURL: String?

    init(tokens: AccessTokens, store: Store, publicURL: String? = nil, vncSocket: @escaping @Sendable (Int64) -> String) {
        self.tokens = tokens
        self.store = store
        self.publicURL = publicURL
        self.vncSocket = vncSocket
    }

    /// The base of the links given in answer to `request`.
    func baseURL(for request: Request) -> String {
        if let publicURL { return publicURL }
        // Only a plain host[:port] is echoed into links; anything else is not a Host we serve.
        let host = request.head.authority ?? ""
        let plain = !host.isEmpty && host.utf8.count <= 255 && host.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || ".-:[]".unicodeScalars.contains($0)
        }
        return "http://" + (plain ? host : "localhost")
    }

    /// The viewer links of `handle` (which must hold a VM), registering the tokens' hashes.
    func links(for handle: HandleRecord, baseURL: String) async throws -> Links? {
        guard handle.state == .assigned, let handleId = handle.id, let vmId = handle.vmId, let session = handle.vmSession else { return nil }
        var urls: [AccessScope: String] = [:]
        var records: [AccessTokenRecord] = []
        for scope in AccessScope.allCases {
            let token = tokens.token(handle: handleId, vm: vmId, session: session, scope: scope)
            records.append(AccessTokenRecord(
                hash: AccessTokens.hash(token), handleId: handleId, vmId: vmId, vmSession: session, scope: scope, createdAt: Date()))
            urls[scope] = scope == .audio ? "\(baseURL)/audio/\(token)" : "\(baseURL)/viewer/\(vmId)?token=\(token)"
        }
        try await store.registerAccessTokens(records)
        let audio = urls[.audio]!
        let webSocketAudio = (audio.hasPrefix("https:") ? "wss:" + audio.dropFirst(6) : "ws:" + audio.dropFirst(5)) + "/ws"
        return Links(url: urls[.control]!, viewUrl: urls[.view]!, audioUrl: audio, audioWsUrl: webSocketAudio)
    }

    /// The grant of `token` on the screen of `vm`, or the API error that refuses it: 401 for a
    /// missing, malformed, unknown or ended token, 403 for another VM's token or an audio token.
    func grant(token: String?, vm: Int64) async throws -> Grant {
        let grant = try await grant(token: token)
        guard grant.vmId == vm else {
            throw APIError(status: .forbidden, code: "wrong_vm", message: "the viewer token is not for VM \(vm)")
        }
        guard AccessScope.screen.contains(grant.scope) else {
            throw APIError(status: .forbidden, code: "wrong_scope", message: "an audio token does not open the screen")
        }
        return grant
    }

    /// The grant of a live `token` of any scope (every scope may hear its VM's audio), or 401.
    func grant(token: String?) async throws -> Grant {
        guard let token, AccessTokens.isWellFormed(token) else {
            throw APIError(status: .unauthorized, code: "invalid_token", message: "a viewer token is required (?token=...)")
        }
        let hash = AccessTokens.hash(token)
        guard let record = try await store.liveAccessGrant(hash: hash) else {
            throw APIError(status: .unauthorized, code: "invalid_token", message: "the viewer token is unknown or its handle has ended")
        }
        return Grant(tokenHash: hash, handleId: record.handleId, vmId: record.vmId, scope: record.scope)
    }

    /// Revokes the open sessions whose grants are no longer live; returns how many.
    @discardableResult
    func sweep() async throws -> Int {
        let open = sessions.grants
        guard !open.isEmpty else { return 0 }
        let live = try await store.liveAccessHashes(Set(open.map(\.tokenHash)))
        return sessions.revoke(open.filter { !live.contains($0.tokenHash) })
    }
}
