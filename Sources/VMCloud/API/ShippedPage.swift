import Hummingbird
import VMCloudCore

extension InstalledFiles {
    /// A shipped page (static/*.html) as the answer to a GET, never cached: a 500 `missing_file`
    /// when the install lacks it.
    static func htmlPage(_ relative: String) throws -> Response {
        guard let page = contents(relative) else {
            throw APIError(status: .internalServerError, code: "missing_file", message: "\(relative) is not installed")
        }
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: page)))
    }
}
