import Foundation
import GRDB

/// Captured pages and their blobs.
extension Store {
    /// Records a complete page and its blobs in one transaction.
    package func insertPage(_ page: PageRecord) async throws -> PageRecord {
        try await pool.write { db in try Store.insertPage(db, page) }
    }

    package static func insertPage(_ db: Database, _ page: PageRecord) throws -> PageRecord {
            for (hash, bytes) in [(page.screenshotHash, page.screenshotBytes), (page.mhtmlHash, page.mhtmlBytes)] {
                guard let hash else { continue }
                try db.execute(sql: "INSERT OR IGNORE INTO blob (hash, bytes, createdAt) VALUES (?, ?, ?)",
                               arguments: [hash, bytes, Date()])
            }
            var page = page
            try page.insert(db)
            try Store.log(db, "page.captured", vm: page.vmId, "\(page.url) (\(page.screenshotBytes) B screenshot, \(page.mhtmlBytes) B MHTML)")
            return page
    }

    /// The pages of the session a handle held: never those of earlier or later users.
    package func pages(handle: HandleRecord) async throws -> [PageRecord] {
        guard let vmId = handle.vmId, let session = handle.vmSession else { return [] }
        return try await pool.read { db in
            try PageRecord.filter(Column("vmId") == vmId && Column("vmSession") == session).order(Column("id")).fetchAll(db)
        }
    }

    package func page(_ id: Int64) async throws -> PageRecord? {
        try await pool.read { db in try PageRecord.fetchOne(db, key: id) }
    }
}
