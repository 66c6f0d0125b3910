import Foundation
import Testing
import VNCBridge
@testable import VMCloud
@testable import VMCloudCore

/// Viewer tokens on a real SQLite store: what a token grants, when it dies, and the sweep that
/// ends open sessions whose access has ended.
@Suite struct ViewerAccessTests {
    /// A store with two VMs locked by two handles, and the access over it.
    static func lockedTwo() async throws -> (ViewerAccess, [HandleRecord], String) {
        let (store, dir) = try makeStore()
        let tokens = try AccessTokens.load(path: dir + "/viewer-secret")
        let access = ViewerAccess(tokens: tokens, store: store, vncSocket: { "/nonexistent/vm\($0).sock" })
        let batch = try await store.createBatch(size: 2, homepage: "http://a.test/")
        var handles: [HandleRecord] = []
        for _ in 0..<2 {
            let vm = try await makeIdleVM(store)
            _ = try await store.grantIdleVMs()
            _ = try await store.configured(vm: vm, homepage: "http://a.test/")
            handles.append(try await store.lock(batchId: batch.id!))
        }
        return (access, handles, dir)
    }

    static func token(_ url: String) -> String { String(url.split(separator: "token=").last!) }

    @Test func tokensGrantTheirScopeOnTheirVMOnly() async throws {
        let (access, handles, dir) = try await Self.lockedTwo()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let links = try #require(try await access.links(for: handles[0], baseURL: "http://h:1"))
        let other = try #require(try await access.links(for: handles[1], baseURL: "http://h:1"))
        let vm = handles[0].vmId!
        #expect(links.url == "http://h:1/viewer/\(vm)?token=\(Self.token(links.url))")
        #expect(try await access.links(for: handles[0], baseURL: "http://h:1") == links, "the same links on every call")
        #expect(try await access.grant(token: Self.token(links.url), vm: vm).scope == .control)
        #expect(try await access.grant(token: Self.token(links.viewUrl), vm: vm).scope == .view)
        // The audio links carry a third token: it hears the VM, it never opens the screen.
        let audioToken = String(links.audioUrl.split(separator: "/").last!)
        #expect(links.audioUrl == "http://h:1/audio/\(audioToken)")
        #expect(links.audioWsUrl == "ws://h:1/audio/\(audioToken)/ws")
        #expect(Set([audioToken, Self.token(links.url), Self.token(links.viewUrl)]).count == 3)
        #expect(try await access.grant(token: audioToken).scope == .audio)
        #expect(try await access.grant(token: audioToken).vmId == vm)
        #expect(try await access.grant(token: Self.token(links.viewUrl)).scope == .view, "viewer tokens hear the audio too")
        // Another VM's token, an audio token on the screen, a made-up one, none.
        for (token, status) in [(Self.token(other.url), 403), (audioToken, 403), (String(repeating: "x", count: 43), 401), (nil, 401), ("a/b", 401)] {
            await #expect { _ = try await access.grant(token: token, vm: vm) } throws: { ($0 as? APIError)?.status.code == status }
        }
        // Only hashes are stored: three tokens per handle.
        let stored = try await access.store.pool.read { db in try String.fetchAll(db, sql: "SELECT hash FROM access_token") }
        #expect(stored.count == 6 && !stored.contains(Self.token(links.url)))
        #expect(stored.contains(AccessTokens.hash(Self.token(links.url))))
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/viewer-secret")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func releaseEndsTheTokensAndTheSweepClosesTheirSessions() async throws {
        let (access, handles, dir) = try await Self.lockedTwo()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let released = try #require(try await access.links(for: handles[0], baseURL: "http://h"))
        let kept = try #require(try await access.links(for: handles[1], baseURL: "http://h"))
        let sessions = [
            access.sessions.open(try await access.grant(token: Self.token(released.url), vm: handles[0].vmId!)),
            access.sessions.open(try await access.grant(token: Self.token(released.viewUrl), vm: handles[0].vmId!)),
            access.sessions.open(try await access.grant(token: Self.token(kept.url), vm: handles[1].vmId!)),
        ]
        #expect(try await access.sweep() == 0, "all access is live")
        _ = try await access.store.release(handleId: handles[0].id!)
        #expect(try await access.sweep() == 2, "both sessions of the released handle end")
        await #expect { _ = try await access.grant(token: Self.token(released.url), vm: handles[0].vmId!) } throws: {
            ($0 as? APIError)?.status.code == 401
        }
        #expect(try await access.grant(token: Self.token(kept.url), vm: handles[1].vmId!).handleId == handles[1].id)
        sessions.forEach(access.sessions.close)
        #expect(access.sessions.count == 0)
    }

    @Test func theSecretSurvivesARestartAndABadOneIsRefused() throws {
        let dir = try makeTemporaryDirectory("secret")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try AccessTokens.load(path: dir + "/s")
        #expect(try AccessTokens.load(path: dir + "/s").token(handle: 1, vm: 2, session: 0, scope: .control)
                == first.token(handle: 1, vm: 2, session: 0, scope: .control))
        #expect(first.token(handle: 1, vm: 2, session: 0, scope: .control) != first.token(handle: 1, vm: 2, session: 0, scope: .view))
        #expect(AccessTokens.isWellFormed(first.token(handle: 1, vm: 2, session: 0, scope: .view)))
        _ = FileManager.default.createFile(atPath: dir + "/bad", contents: Data("short".utf8))
        #expect(throws: AccessTokens.SecretError.self) { try AccessTokens.load(path: dir + "/bad") }
    }
}
