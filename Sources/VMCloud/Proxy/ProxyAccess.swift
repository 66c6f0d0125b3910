import VMCloudCore
/// Who may go through the proxy to a resource. `/smart_proxy/{id}/{groups}/...`: the caller
/// claims groups in the URL; each must be one the client holds and together they must cover the
/// resource's required groups. `/r/{id}/...`: the client's own groups must cover them. Refused
/// with 403 before anything starts.
enum ProxyAccess {
    static func check(client: ClientIdentity, claimed: Set<String>?, required: Set<String>, resource: String) throws {
        if let claimed {
            let unheld = claimed.filter { !client.holds([$0]) }
            guard unheld.isEmpty else {
                throw forbidden("the client does not hold the claimed group(s) \(unheld.sorted().joined(separator: ","))")
            }
            let missing = required.subtracting(claimed)
            guard missing.isEmpty else {
                throw forbidden("resource \(resource) requires the group(s) \(missing.sorted().joined(separator: ",")), not claimed in the URL")
            }
        } else {
            guard client.holds(required) else {
                let missing = required.subtracting(client.groups)
                throw forbidden("resource \(resource) requires the group(s) \(missing.sorted().joined(separator: ",")), which the client does not hold")
            }
        }
    }

    private static func forbidden(_ message: String) -> APIError {
        APIError(status: .forbidden, code: "forbidden", message: message)
    }
}
