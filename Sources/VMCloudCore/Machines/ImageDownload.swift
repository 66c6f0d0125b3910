import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Fetches an http(s) image into a file, reporting progress; the file appears only once the
/// download is complete (written as `<dest>.part`, then renamed).
package final class ImageDownload: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    package struct Failed: Error, CustomStringConvertible {
        package let description: String

        package init(description: String) {
            self.description = description
        }
    }

    private let destination: String
    private let progress: @Sendable (_ received: Int64, _ total: Int64?) -> Void
    private let lock = NSLock()
    private var file: FileHandle?
    private var received: Int64 = 0
    private var total: Int64?
    private var lastReport = Date.distantPast
    private var failure: String?
    private var continuation: CheckedContinuation<Void, Error>?

    private init(destination: String, progress: @escaping @Sendable (Int64, Int64?) -> Void) {
        self.destination = destination
        self.progress = progress
    }

    /// Downloads `url` to `destination`; `progress` is called at most twice a second.
    package static func fetch(_ url: String, to destination: String, timeout: TimeInterval = 3600,
                      progress: @escaping @Sendable (Int64, Int64?) -> Void) async throws {
        guard let address = URL(string: url) else { throw Failed(description: "bad URL \(url)") }
        let download = ImageDownload(destination: destination, progress: progress)
        let partial = destination + ".part"
        FileManager.default.createFile(atPath: partial, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: partial) else { throw Failed(description: "cannot write \(partial)") }
        download.file = handle
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 60
        configuration.timeoutIntervalForResource = timeout
        let session = URLSession(configuration: configuration, delegate: download, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                download.lock.withLock { download.continuation = continuation }
                session.dataTask(with: address).resume()
            }
            try handle.close()
            try? FileManager.default.removeItem(atPath: destination)
            try FileManager.default.moveItem(atPath: partial, toPath: destination)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    package func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            lock.withLock { failure = "HTTP \(status)" }
            completionHandler(.cancel)
            return
        }
        lock.withLock { total = response.expectedContentLength >= 0 ? response.expectedContentLength : nil }
        completionHandler(.allow)
    }

    package func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let report: (Int64, Int64?)? = lock.withLock {
            do { try file?.write(contentsOf: data) } catch { failure = "writing the image: \(error)"; dataTask.cancel() }
            received += Int64(data.count)
            guard Date().timeIntervalSince(lastReport) >= 0.5 else { return nil }
            lastReport = Date()
            return (received, total)
        }
        if let report { progress(report.0, report.1) }
    }

    package func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        let (continuation, failure, received, total) = lock.withLock {
            defer { self.continuation = nil }
            return (self.continuation, self.failure, self.received, self.total)
        }
        if let failure {
            continuation?.resume(throwing: Failed(description: failure))
        } else if let error {
            continuation?.resume(throwing: Failed(description: "download failed: \(error.localizedDescription)"))
        } else if let total, received != total {
            continuation?.resume(throwing: Failed(description: "download ended after \(received) of \(total) bytes"))
        } else {
            progress(received, total)
            continuation?.resume()
        }
    }
}
