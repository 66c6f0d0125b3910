/// Why an image could not be decoded or encoded.
public enum ScreenImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not a well-formed file of the format.
    case malformed(String)
    /// The bytes end before the image does.
    case truncated(String)
    /// Well-formed, but a variant this module does not decode (e.g. 16-bit samples).
    case unsupported(String)
    /// The header announces more pixels than `ImageLimits` allow.
    case tooLarge(width: Int, height: Int)
    /// zlib reported an error.
    case zlib(String)

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed image: \(why)"
        case .truncated(let why): return "truncated image: \(why)"
        case .unsupported(let why): return "unsupported image: \(why)"
        case .tooLarge(let width, let height): return "image too large: \(width)x\(height)"
        case .zlib(let why): return "zlib: \(why)"
        }
    }
}
