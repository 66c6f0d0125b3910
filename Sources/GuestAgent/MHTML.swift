// A single-page MHTML document (RFC 2557 multipart/related), shaped like Chromium's "Save as
// MHTML": the file browser's capture of a page it fetched.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum MHTML {
    /// The document for `html` fetched from `url`: one `text/html` part, binary transfer
    /// encoding (the body as received). `url` must not contain CR or LF.
    static func document(url: String, title: String, html: [UInt8], charset: String?, time: Int64) -> [UInt8] {
        let boundary = boundary(notIn: html, seed: UInt64(bitPattern: time))
        var contentType = "text/html"
        if let charset { contentType += "; charset=\(charset)" }
        var head = "From: <Saved by vmcloud guest agent>\r\n"
        head += "Snapshot-Content-Location: \(url)\r\n"
        head += "Subject: \(encodedWord(title))\r\n"
        head += "Date: \(rfc5322Date(epochMilliseconds: time))\r\n"
        head += "MIME-Version: 1.0\r\n"
        head += "Content-Type: multipart/related;\r\n\ttype=\"text/html\";\r\n\tboundary=\"\(boundary)\"\r\n"
        head += "\r\n"
        head += "--\(boundary)\r\n"
        head += "Content-Type: \(contentType)\r\n"
        head += "Content-Transfer-Encoding: binary\r\n"
        head += "Content-Location: \(url)\r\n"
        head += "\r\n"
        return Array(head.utf8) + html + Array("\r\n--\(boundary)--\r\n".utf8)
    }

    /// A boundary that does not occur in the body (required with binary encoding).
    static func boundary(notIn body: [UInt8], seed: UInt64) -> String {
        var attempt: UInt64 = 0
        while true {
            var mixed = seed &* 0x9E37_79B9_7F4A_7C15 &+ attempt &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(truncatingIfNeeded: Deadline.now)
            mixed ^= mixed >> 31
            let candidate = "----MultipartBoundary--vmcloud\(String(mixed, radix: 36))----"
            if !contains(body, Array(candidate.utf8)) { return candidate }
            attempt += 1
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return needle.isEmpty }
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first && haystack[i..<i + needle.count].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    /// RFC 2047 B-encoding when the text is not plain printable ASCII.
    static func encodedWord(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return text }
        return "=?utf-8?B?\(Data(text.utf8).base64EncodedString())?="
    }

    /// "Tue, 02 Dec 2025 12:00:00 +0000" (UTC), computed without a calendar library.
    static func rfc5322Date(epochMilliseconds ms: Int64) -> String {
        let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let weekday = weekdays[Int(((days % 7) + 7) % 7)]
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(day)) \(months[Int(month - 1)]) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }
}
