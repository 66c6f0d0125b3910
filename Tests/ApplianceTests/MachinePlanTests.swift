import Foundation
import Libvirt
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The reconciler's decision table: (desired, status, domain state) -> next action.
@Suite struct MachinePlanTests {
    static func machine(_ desired: MachineDesired, _ status: MachineStatus, agentSeen: Bool = true) -> MachineRecord {
        MachineRecord(
            id: 1, uuid: "u", name: "n",
            spec: MachineSpec.plain(hda: .stored("a"), runAgent: true),
            desired: desired, status: status, reason: nil, ip: nil, agentVersion: nil, agentSeen: agentSeen, ownerKey: nil,
            accessKey: nil, domainName: "d", createdAt: Date(), statusSince: Date())
    }

    @Test(arguments: [
        (MachineDesired.running, MachineStatus.starting, DomainState?.none, MachineAction?.some(.start)),
        (.running, .starting, .running, .adopt),
        (.running, .running, .running, nil),
        (.running, .installing, nil, .crashed),
        (.running, .running, .shutoff, .crashed),
        (.suspended, .running, .running, .suspend),
        (.running, .suspended, .paused, .resume),
        (.suspended, .suspended, .paused, nil),
        (.suspended, .running, .paused, .correct(.suspended)),
        (.running, .failedToStart, nil, nil),
        (.running, .stopped, nil, .restartFromStopped),
        (.stopped, .running, .running, .halt),
        (.stopped, .starting, nil, .halt),
        (.stopped, .saving, nil, .save),
        (.stopped, .stopped, nil, nil),
        (.stopped, .failedToSave, .running, .halt),
        (.destroyed, .running, .running, .destroy),
        (.destroyed, .destroyed, nil, nil),
    ] as [(MachineDesired, MachineStatus, DomainState?, MachineAction?)])
    func decides(desired: MachineDesired, status: MachineStatus, domain: DomainState?, expected: MachineAction?) {
        #expect(MachinePlan.next(Self.machine(desired, status), domain: domain) == expected)
    }

    @Test func aResumedVMWhoseAgentNeverSpokeIsInstalling() {
        #expect(MachinePlan.next(Self.machine(.running, .suspended, agentSeen: false), domain: .running) == .correct(.installing))
    }
}
