import Foundation

/// The wait condition of a capture job, checked on the capture the agent sent.
package enum JobCapture {
    /// True unless the VM runs a job with `waitForText` that the capture's MHTML lacks.
    package static func meetsWait(_ page: PageRecord, vm: VMRecord, store: Store, blobs: BlobStore) async throws -> Bool {
        guard vm.state == .working, let jobId = vm.jobId, let job = try await store.job(jobId), let text = job.waitForText else { return true }
        guard let hash = page.mhtmlHash else { return false }
        // Captures are at most a few MiB (CaptureReceiver's limit); read off the event loop.
        let path = blobs.path(hash: hash)
        return try await Task.detached {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return data.range(of: Data(text.utf8)) != nil
        }.value
    }
}
