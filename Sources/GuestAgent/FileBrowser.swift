// `--browser file`: keeps what a real browser would apply in a file, so the host <-> guest
// protocol can be tested end to end in the tiny test image (no browser there). After each
// configure it also loads the homepage in the background (PageFetcher: http:// to an IPv4
// address only) and reports it as a captured page, like a browser's page load would be.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import AgentProtocol

/// What FileBrowser persists.
struct BrowserState: Codable, Equatable {
    var homepage: String
    var cookies: [Cookie]
}

final class FileBrowser: Browser {
    let path: String
    private let fetcher: PageFetcher

    init(path: String, outbox: Outbox) {
        self.path = path
        fetcher = PageFetcher(sender: PageSender(outbox: outbox))
    }

    func navigate(url: String) throws {
        throw SystemError(description: "navigate is not supported by the file browser")
    }

    func status() throws -> BrowserStatus {
        BrowserStatus(homepage: try load()?.homepage)
    }

    /// `kiosk` means nothing without a screen.
    func configure(homepage: String, cookies: [Cookie], kiosk: Bool) throws -> Configured {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = [UInt8](try encoder.encode(BrowserState(homepage: homepage, cookies: cookies)))
        try writeAtomically(bytes)
        // Report what is really on disk, not what we meant to write. The page load starts once
        // the reply is queued and never holds it up.
        return Configured(homepage: try load()?.homepage, afterReply: fetcher.prepare(url: homepage, cookies: cookies))
    }

    func reset() throws {
        fetcher.reset()
        if unlink(path) != 0 && errno != ENOENT { throw SystemError.errno("unlink \(path)") }
    }

    private func load() throws -> BrowserState? {
        guard let bytes = try readFile(path) else { return nil }
        do {
            return try JSONDecoder().decode(BrowserState.self, from: Data(bytes))
        } catch {
            throw SystemError(description: "\(path) is not a valid state file: \(error)")
        }
    }

    /// Temp file + fsync + rename: a crash or power cut leaves the old state or the new one,
    /// never a torn file.
    private func writeAtomically(_ bytes: [UInt8]) throws {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]))
        }
        let temp = "\(path).tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError.errno("open \(temp)") }
        do {
            try writeAll(fd, bytes, what: temp)
            guard fsync(fd) == 0 else { throw SystemError.errno("fsync \(temp)") }
            guard close(fd) == 0 else { throw SystemError.errno("close \(temp)") }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        guard rename(temp, path) == 0 else {
            let failure = SystemError.errno("rename \(temp) -> \(path)")
            unlink(temp)
            throw failure
        }
    }
}
