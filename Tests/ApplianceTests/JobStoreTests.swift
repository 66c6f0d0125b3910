import AgentProtocol
import Foundation
import GRDB
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The capture-job queue's transitions in a real SQLite file.
@Suite struct JobStoreTests {
    private func page(vm: Int64, session: Int64) -> PageRecord {
        PageRecord(id: nil, vmId: vm, vmSession: session, agentPage: 1, url: "http://a.test/", title: "a", at: Date(),
                   guestTime: 0, screenshotHash: nil, screenshotBytes: 0, mhtmlHash: nil, mhtmlBytes: 0)
    }

    @Test func aJobIsClaimedOnceCompletesOnceAndFreesItsVM() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = try await store.createJob(client: nil, url: "http://a.test/", cookies: [], waitForText: nil, timeoutMs: 5000, maxAttempts: 3)
        #expect(try await store.claimJobs().isEmpty, "no idle VM, no claim")
        let vm = try await makeIdleVM(store)
        let claims = try await store.claimJobs()
        #expect(claims.map(\.vmId) == [vm] && claims.first?.job.id == job.id)
        #expect(try await store.claimJobs().isEmpty, "a running job is not claimed twice")
        #expect(try await store.vm(vm)?.state == .working)

        let (_, first) = try await store.insertCapture(page(vm: vm, session: 0), waitMet: true)
        #expect(first == .ended(vmId: vm))
        let (_, second) = try await store.insertCapture(page(vm: vm, session: 0), waitMet: true)
        #expect(second == .notAJob, "a second capture does not complete the job again")
        let done = try #require(try await store.job(job.id!))
        #expect(done.state == .done && done.pageId != nil && done.attempts == 1)
        #expect(try await store.endJobAttempt(claims[0].attemptId, .timeout, reason: "late") == nil, "the timeout of a finished try does nothing")
        #expect(try await store.job(job.id!)?.state == .done)
        #expect(try await store.vm(vm)?.state == .resetting)
    }

    @Test func aFailedTryIsRetriedOnAnotherVMUntilTheTriesAreUsedUp() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = try await store.createJob(client: nil, url: "http://a.test/", cookies: [], waitForText: "x", timeoutMs: 5000, maxAttempts: 2)
        let vm1 = try await makeIdleVM(store)
        let first = try #require(try await store.claimJobs().first)
        #expect(first.vmId == vm1)
        #expect(try await store.endJobAttempt(first.attemptId, .timeout, reason: "no capture") == vm1)
        #expect(try await store.job(job.id!)?.state == .queued)
        #expect(try await store.resetDone(vm: vm1) == .idle)
        #expect(try await store.claimJobs().isEmpty, "the VM whose try failed does not get the retry")

        let vm2 = try await makeIdleVM(store)
        let second = try #require(try await store.claimJobs().first)
        #expect(second.vmId == vm2)
        // The page came but lacks the text to wait for: the last try fails the job.
        #expect(try await store.insertCapture(page(vm: vm2, session: 0), waitMet: false).1 == .ended(vmId: vm2))
        let failed = try #require(try await store.job(job.id!))
        #expect(failed.state == .failed && failed.attempts == 2 && failed.lastError?.hasPrefix("wait_failed") == true)
        #expect(try await store.jobErrors(client: nil, limit: 10).map(\.outcome) == [.waitFailed, .timeout])
    }

    @Test func aLostVMAndARestartGiveTheJobBack() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = try await store.createJob(client: nil, url: "http://a.test/", cookies: [], waitForText: nil, timeoutMs: 5000, maxAttempts: 1)
        let vm1 = try await makeIdleVM(store)
        _ = try await store.claimJobs()
        // A restart of the appliance: not counted, so the job's one try is still available.
        #expect(try await store.interruptedJob(vm: vm1))
        #expect(try await store.job(job.id!)?.state == .queued)
        #expect(try await store.job(job.id!)?.attempts == 0)
        _ = try await store.resetDone(vm: vm1)
        let again = try #require(try await store.claimJobs().first)
        #expect(again.vmId == vm1, "an interrupted try may go back to the same VM")
        #expect(try await store.markFailed(vm: vm1, reason: "QEMU killed"))
        let lost = try #require(try await store.job(job.id!))
        #expect(lost.state == .failed && lost.lastError?.hasPrefix("vm_lost") == true)
        #expect(try await store.vm(vm1)?.jobId == nil)
    }

    /// A VM whose reset just made it idle is still busy in the engine (its work has not ended):
    /// neither a job nor a batch may take it in that pass, or its new work could not start and
    /// the job would wait on it for ever. The next pass takes it.
    @Test func aBusyIdleVMIsNeitherClaimedNorGranted() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vm = try await makeIdleVM(store)
        _ = try await store.createJob(client: nil, url: "http://a.test/", cookies: [], waitForText: nil, timeoutMs: 5000, maxAttempts: 3)
        _ = try await store.createBatch(size: 1, homepage: "http://b.test/")
        #expect(try await store.claimJobs(excluding: [vm]).isEmpty)
        #expect(try await store.grantIdleVMs(excluding: [vm]).isEmpty)
        #expect(try await store.vm(vm)?.state == .idle)
        #expect(try await store.claimJobs().map(\.vmId) == [vm])
    }
}
