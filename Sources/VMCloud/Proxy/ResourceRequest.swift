import Foundation
import VMCloudCore

/// The body of `POST /v1/resources`: the resource's id, guest port, required groups and idle
/// timeout, and its VM (an image, or a kernel and initrd booted directly, with the generic
/// VM fields). `validated` answers 400 naming the field, or the record to store.
struct ResourceRequest: Decodable {
    var id: String
    var port: Int
    /// "g1,g2" or ["g1", "g2"]; absent or empty: any caller with a key.
    var groups: GroupList?
    var idle_timeout: Int?
    var image: String
    var kernel_image: String?
    var initrd_image: String?
    var cmdline: String?
    var cpu_count: Int?
    var mem_size: Int?
    var hypervisor: String?
    var run_agent: Bool?

    /// Groups given as one comma-separated string or as an array of names.
    struct GroupList: Decodable {
        var names: [String]
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                names = text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            } else if let list = try? container.decode([String].self) {
                names = list
            } else {
                throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "groups must be a comma-separated string or an array of names"))
            }
        }
    }

    static let defaultIdleTimeout = 300

    func validated(host: MachineRequest.Host, now: Date = Date()) throws -> ResourceRecord {
        let id = try ResourceValidation.id(id)
        guard (1...65535).contains(port) else { throw Refusal.invalid("port must be 1 to 65535, got \(port)") }
        let groups = try ResourceValidation.groups(groups?.names ?? [])
        let idle = idle_timeout ?? Self.defaultIdleTimeout
        guard (1...86_400).contains(idle) else { throw Refusal.invalid("idle_timeout must be 1 to 86400 seconds, got \(idle)") }
        // The generic VM checks (images in the store or URLs, sizes, cmdline); the name is ours.
        let machine = MachineRequest(
            name: "resource", hypervisor: hypervisor, cpu_count: cpu_count, mem_size: mem_size, sys_arch: nil,
            hda_image: image, hda_save_to: nil, hdb_image: nil, hdb_save_to: nil, cd_image: nil,
            kernel_image: kernel_image, initrd_image: initrd_image, cmdline: cmdline,
            run_agent: run_agent ?? false, on_crash: "restart", stop_grace: 0)
        var (_, spec) = try machine.validated(host: host)
        // The host reaches the guest's port on libvirt's NAT network, whatever --network says.
        spec.network = .nat
        return ResourceRecord(id: id, spec: spec, port: port, groups: groups.sorted().joined(separator: ","),
                              idleTimeout: idle, createdAt: now)
    }
}

/// Ids and group names: a letter, then letters, digits, `-` or `_`; 1 to 64 in all.
enum ResourceValidation {
    static func isSlug(_ raw: some StringProtocol) -> Bool {
        let bytes = Array(raw.utf8)
        guard (1...64).contains(bytes.count), isLetter(bytes[0]) else { return false }
        return bytes.allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) }

    static func id(_ raw: String) throws -> String {
        guard isSlug(raw) else {
            throw Refusal.invalid("resource id must be 1 to 64 letters, digits, '-' or '_' starting with a letter, got '\(raw.prefix(80))'")
        }
        return raw
    }

    /// At most 32 distinct names.
    static func groups(_ names: [String]) throws -> Set<String> {
        guard names.count <= 32 else { throw Refusal.invalid("at most 32 groups") }
        for name in names where !isSlug(name) {
            throw Refusal.invalid("group names are 1 to 64 letters, digits, '-' or '_' starting with a letter, got '\(name.prefix(80))'")
        }
        return Set(names)
    }

    /// The `{groups}` segment of `/smart_proxy/{id}/{groups}/...`: comma-separated names
    /// (`%2C` too), or `-` for none.
    static func claimedGroups(_ segment: String) throws -> Set<String> {
        let decoded = segment.removingPercentEncoding ?? segment
        if decoded == "-" { return [] }
        let names = decoded.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard names.count <= 64 else { throw Refusal.invalid("at most 64 claimed groups") }
        // Any name a client may hold (ClientValidation), not only the stricter resource form.
        for name in names where !ClientValidation.isGroupName(name) {
            throw Refusal.invalid("claimed group '\(name.prefix(64))' must be 1 to 64 letters, digits, '-' or '_'")
        }
        return Set(names)
    }
}
