/// Escaping for values placed into libvirt domain XML.
public enum XMLEscaping {
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The value contains a character XML 1.0 cannot represent at all (e.g. NUL, U+0001).
        case unrepresentableCharacter(value: String, scalar: UInt32)
        /// An element or attribute name (or prefix) is not a valid XML name.
        case invalidName(String)

        public var description: String {
            switch self {
            case .unrepresentableCharacter(let value, let scalar):
                return "value \(value.debugDescription) contains U+\(String(scalar, radix: 16, uppercase: true)), which XML cannot represent"
            case .invalidName(let name):
                return "\(name.debugDescription) is not a valid XML name"
            }
        }
    }

    /// Escapes text content (between tags).
    public static func text(_ value: String) throws -> String {
        try escape(value, attribute: false)
    }

    /// Escapes an attribute value; safe inside either quote style. Tab/CR/LF become character
    /// references because a parser would otherwise normalise them to spaces.
    public static func attribute(_ value: String) throws -> String {
        try escape(value, attribute: true)
    }

    /// Checks a name used as element, attribute or namespace prefix (no colon allowed: prefixes
    /// are added by the renderer). Names cannot be escaped, so bad ones are rejected.
    public static func checkName(_ name: String) throws -> String {
        guard let first = name.unicodeScalars.first, isNameStart(first),
              name.unicodeScalars.dropFirst().allSatisfy({ isNameStart($0) || isNameChar($0) })
        else { throw Failure.invalidName(name) }
        return name
    }

    private static func escape(_ value: String, attribute: Bool) throws -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += attribute ? "&quot;" : "\""
            case "'": out += attribute ? "&apos;" : "'"
            case "\t": out += attribute ? "&#9;" : "\t"
            case "\n": out += attribute ? "&#10;" : "\n"
            case "\r": out += "&#13;"  // a literal CR would be folded into LF even in text
            default:
                guard isXMLChar(scalar) else {
                    throw Failure.unrepresentableCharacter(value: value, scalar: scalar.value)
                }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// XML 1.0 `Char` production (tab/LF/CR are handled by the caller).
    private static func isXMLChar(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: return true
        default: return false
        }
    }

    // Deliberately ASCII-only: the names we emit are ours or the caller's identifiers.
    private static func isNameStart(_ s: Unicode.Scalar) -> Bool {
        (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || s == "_"
    }

    private static func isNameChar(_ s: Unicode.Scalar) -> Bool {
        (s >= "0" && s <= "9") || s == "-" || s == "."
    }
}
