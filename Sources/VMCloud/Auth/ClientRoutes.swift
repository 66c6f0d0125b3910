import Foundation
import Hummingbird
import VMCloudCore

/// `/v1/clients`: registering clients (admin), their keys and their statistics.
struct ClientRoutes {
    let store: Store

    struct RegisterBody: Decodable {
        var email: String
        var role: String?
        var groups: [String]?
    }

    func register(on router: APIRouter) {
        let clients = router.group("v1/clients")
        clients.post(access: .admin) { request, _ in
            let body = try await JSONBody.decode(RegisterBody.self, from: request)
            let email = try ClientValidation.email(body.email)
            let role = try body.role.map { raw in
                guard let role = ClientRole(rawValue: raw) else { throw APIError.badRequest("role must be admin or application") }
                return role
            } ?? .application
            let groups = try ClientValidation.groups(body.groups ?? [])
            do {
                let (client, key) = try await store.createClient(email: email, role: role, groups: groups)
                return JSONBody.response(try await view(client, key: key), status: .created)
            } catch let error as ClientStoreError {
                throw APIError(status: .conflict, code: "email_taken", message: error.description)
            }
        }
        clients.get(access: .admin) { _, _ in
            var views: [ClientView] = []
            for client in try await store.clients() { views.append(try await view(client)) }
            return JSONBody.response(views)
        }
        clients.get("me", access: .client) { _, context in
            JSONBody.response(try await view(try await own(context.requireClient().clientId, context)))
        }
        clients.get(":id", access: .client) { _, context in
            JSONBody.response(try await view(try await own(try InputValidation.id(context.parameters.require("id"), "id"), context)))
        }
        // A new key; the old one stops working at once.
        clients.post(":id/key", access: .client) { _, context in
            let client = try await own(try InputValidation.id(context.parameters.require("id"), "id"), context)
            let (rotated, key) = try await store.rotateKey(client: client.id!)
            return JSONBody.response(try await view(rotated, key: key))
        }
        clients.delete(":id", access: .admin) { _, context in
            let id = try InputValidation.id(context.parameters.require("id"), "id")
            guard id != context.client?.clientId else {
                throw APIError(status: .conflict, code: "revoking_self", message: "an admin cannot revoke its own key; use another admin")
            }
            guard try await store.client(id)?.revoked == false else { throw APIError.notFound("no client \(id)") }
            try await store.revokeClient(id)
            return JSONBody.empty
        }
    }

    /// A client the caller may see: itself, or any for an admin (others' are 404, not 403, so
    /// that ids do not leak).
    private func own(_ id: Int64?, _ context: AppRequestContext) async throws -> ClientRecord {
        let caller = try context.requireClient()
        guard let id, caller.isAdmin || caller.clientId == id, let client = try await store.client(id), !client.revoked else {
            throw APIError.notFound(id.map { "no client \($0)" } ?? "the legacy caller on a trusted network is not a registered client")
        }
        return client
    }

    private func view(_ client: ClientRecord, key: ClientKey? = nil) async throws -> ClientView {
        ClientView(client, stats: try await store.stats(client: client.id!), key: key?.text)
    }
}

struct ClientView: Encodable {
    struct Stats: Encodable {
        let requests: Int64
        let batches: Int
        let locks: Int
        let jobsDone: Int
        let jobsFailed: Int
    }

    let id: Int64
    let email: String
    let role: String
    let groups: [String]
    let createdAt: Date
    let lastSeenAt: Date?
    let stats: Stats
    /// Only in the answer that creates or rotates it: it is not stored.
    let key: String?

    init(_ client: ClientRecord, stats: ClientStats, key: String?) {
        id = client.id!
        email = client.email
        role = client.role.rawValue
        groups = client.groups
        createdAt = client.createdAt
        lastSeenAt = client.lastSeenAt
        self.stats = Stats(requests: stats.requests, batches: stats.batches, locks: stats.locks,
                           jobsDone: stats.jobsDone, jobsFailed: stats.jobsFailed)
        self.key = key
    }
}

enum ClientValidation {
    static func email(_ raw: String) throws -> String {
        let email = raw.trimmingCharacters(in: .whitespaces)
        // The OpenAPI document's pattern: ^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$
        func isAlnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        let labels = parts.count == 2 ? parts[1].split(separator: ".", omittingEmptySubsequences: false) : []
        guard email.utf8.count <= 254, parts.count == 2, (1...64).contains(parts[0].utf8.count),
              parts[0].utf8.allSatisfy({ isAlnum($0) || "._%+-".utf8.contains($0) }),
              labels.count >= 2, labels.allSatisfy({ (1...63).contains($0.utf8.count) && $0.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") } }) else {
            throw APIError.badRequest("email must look like name@example.org (letters, digits and ._%+- before the @, a domain of letters, digits and - with a dot)")
        }
        return email
    }

    /// Group names: 1 to 64 of letters, digits, '-' and '_'; at most 64 groups.
    static func groups(_ raw: [String]) throws -> [String] {
        guard raw.count <= 64 else { throw APIError.badRequest("at most 64 groups") }
        for group in raw where !isGroupName(group) {
            throw APIError.badRequest("group '\(group.prefix(64))' must be 1 to 64 letters, digits, '-' or '_'")
        }
        return Array(Set(raw)).sorted()
    }

    static func isGroupName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}
