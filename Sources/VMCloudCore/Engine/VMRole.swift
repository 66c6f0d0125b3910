import Foundation
import Libvirt

/// What a kind of VM contributes to the engine's pass: pool VMs (`Pool`) and generic VMs,
/// keyed viewers and proxy resources (`MachineRole`). The engine lists libvirt once, keeps the
/// one busy set, runs the work and destroys orphans; a role reads its rows and decides, from
/// its own state table, what each of its VMs needs.
package protocol VMRole: Sendable {
    /// The start of this role's domain names (`vmcloud-<instance>-vm`, `...-m`).
    var domainPrefix: String { get }
    /// The event kind recorded when a domain with this prefix that no row knows is destroyed.
    var orphanEvent: String { get }

    /// VMs whose QEMU process is gone (seen by its pid file, before libvirt knows): handled
    /// before libvirt is asked anything, since its listing can block while it cleans up.
    func planDead(_ dead: Set<String>, busy: Set<DomainOwner>) async throws -> [VMWork]

    /// One pass over the role's VMs. The role reads its rows after the engine listed the
    /// domains: a VM that was not busy then has no work in flight, so its row and its domain
    /// agree (only a crash can take a domain away in between).
    func plan(_ pass: EnginePass) async throws -> RolePlan

    /// Opens the session to `owner`'s guest agent (its socket, and what its messages mean, are
    /// the role's). The engine calls it for a VM in `RolePlan.listening` that has none.
    func attachAgent(_ owner: DomainOwner) async
}

/// What the engine saw at the start of a pass.
package struct EnginePass: Sendable {
    /// This appliance's domains by name; a domain whose QEMU is dead is `.crashed`.
    package var domains: [String: DomainState]
    /// VMs with work running: they get none.
    package var busy: Set<DomainOwner>
    /// The first pass since the engine started or libvirt came back: work that the old process
    /// or the lost connection interrupted is issued again.
    package var adopting: Bool
    /// Why a domain ended, by name, when libvirt's event or the QEMU pid poll said so: the
    /// reason a VM that lost its domain is failed with.
    package var endings: [String: String]

    package init(domains: [String: DomainState], busy: Set<DomainOwner> = [], adopting: Bool = false, endings: [String: String] = [:]) {
        self.domains = domains
        self.busy = busy
        self.adopting = adopting
        self.endings = endings
    }

    /// Whether the domain runs (or is paused): it exists and its QEMU lives.
    package func exists(_ name: String) -> Bool { Self.runs(domains[name]) }

    package static func runs(_ state: DomainState?) -> Bool {
        state.map { $0 != .shutoff && $0 != .crashed } ?? false
    }
}

/// A role's answer for one pass.
package struct RolePlan: Sendable {
    /// Work to start, at most one per VM.
    package var work: [VMWork] = []
    /// Every domain name the role's rows know (the rest of ours are orphans).
    package var known: Set<String> = []
    /// The VMs whose domain runs as it should and whose guest agent must be listened to: the
    /// engine attaches the agent of each that has no session (after a restart of the appliance,
    /// or a kill between a domain's start and its attach) and no work running.
    package var listening: Set<DomainOwner> = []
    /// How many VMs the role considered.
    package var count = 0
    /// When the role must look again although nothing kicks (a linger or a boot timeout ends).
    package var lookAgainAt: Date?

    package init(work: [VMWork] = [], known: Set<String> = [], listening: Set<DomainOwner> = [], count: Int = 0, lookAgainAt: Date? = nil) {
        self.work = work
        self.known = known
        self.listening = listening
        self.count = count
        self.lookAgainAt = lookAgainAt
    }
}

/// One VM's piece of work (a boot, a configure, a halt...): the engine runs it as the VM's one
/// task and kicks a pass when it ends. The role handles the work's failure inside `run`.
package struct VMWork: Sendable {
    package let owner: DomainOwner
    package let run: @Sendable () async -> Void

    package init(_ owner: DomainOwner, _ run: @escaping @Sendable () async -> Void) {
        self.owner = owner
        self.run = run
    }
}
