/// Escaping for the small XML documents the gateway writes itself (S3 errors,
/// rewritten listings).
public enum XMLText {
    /// Escapes markup characters. Control characters XML 1.0 cannot carry at all
    /// (not even as character references) become U+FFFD.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for ch in text.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case _ where ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r":
                out += "\u{FFFD}"
            default:
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
