import Foundation
import Hummingbird
import VMCloudCore

/// Captured pages: per handle, and each page's screenshot and MHTML (streamed from the blob
/// store through Hummingbird's FileIO, off the event loop).
struct PageRoutes {
    let pool: Pool
    let blobs: BlobStore
    let fileIO = FileIO()

    func register(on router: APIRouter) {
        router.get("v1/handles/:id/pages", access: .client) { _, context in
            let id = try InputValidation.id(context.parameters.require("id"), "id")
            try context.requireAccess(owner: try await pool.store.handleOwner(id), else: StoreError.handleNotFound(id))
            guard let handle = try await pool.store.handle(id) else { throw StoreError.handleNotFound(id) }
            return JSONBody.response(try await pool.store.pages(handle: handle).map(PageView.init))
        }
        router.get("v1/pages/:id/screenshot.png", access: .client) { _, context in
            try await blob(context, \.screenshotHash, contentType: "image/png")
        }
        router.get("v1/pages/:id/page.mhtml", access: .client) { _, context in
            try await blob(context, \.mhtmlHash, contentType: "multipart/related")
        }
    }

    private func blob(_ context: AppRequestContext, _ hash: KeyPath<PageRecord, String?>, contentType: String) async throws -> Response {
        let id = try InputValidation.id(context.parameters.require("id"), "id")
        try context.requireAccess(owner: try await pool.store.pageOwner(id), else: APIError.notFound("no page \(id)"))
        guard let page = try await pool.store.page(id) else { throw APIError.notFound("no page \(id)") }
        guard let hash = page[keyPath: hash] else { throw APIError.notFound("page \(id) has no such capture (the guest sent none)") }
        let body = try await fileIO.loadFile(path: blobs.path(hash: hash), context: context)
        return Response(status: .ok, headers: [.contentType: contentType], body: body)
    }
}

struct PageView: Encodable {
    let id: Int64
    let url: String
    let title: String
    let at: Date
    let screenshotBytes: Int
    let mhtmlBytes: Int
    /// The browser tab it loaded in, numbered from 1 per session in the order tabs opened.
    let tab: Int?
    let screenshot: String?
    let mhtml: String?

    init(_ page: PageRecord) {
        id = page.id!
        url = page.url
        title = page.title
        at = page.at
        screenshotBytes = page.screenshotBytes
        mhtmlBytes = page.mhtmlBytes
        tab = page.tab
        screenshot = page.screenshotHash == nil ? nil : "/v1/pages/\(id)/screenshot.png"
        mhtml = page.mhtmlHash == nil ? nil : "/v1/pages/\(id)/page.mhtml"
    }
}
