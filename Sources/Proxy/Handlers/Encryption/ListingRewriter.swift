import Foundation

/// Rewrites a ListObjects / ListObjectsV2 / ListObjectVersions document for clients of an encrypting
/// gateway, leaving every other byte unchanged (FORMAT.md §6, §9.4; issue 7 §3):
///
/// * `<ETag>`s that look like an MD5 get `-1` (`ClientETag`): the listing cannot tell an encrypted entry
///   (whose backend ETag is the MD5 of ciphertext) from a plain one, so none claims to be a plaintext MD5;
/// * `<Size>` of a single-part entry becomes the plaintext size (inverse size function, default chunk size);
/// * `<Size>` of a multipart entry (ETag `"…-N"`) becomes the size the caller learned from its part headers
///   (`multipartSizes`); entries missing there (plain objects, unreadable headers) keep their stored size.
///
/// Pure and bounded: a scanner over the bytes, no XML parser; a damaged document comes out no larger.
enum ListingRewriter {
    /// A multipart listing entry whose plaintext size needs its part headers.
    struct MultipartEntry: Hashable, Sendable {
        var key: String
        var versionID: String?
        var storedSize: Int
        var partCount: Int
        var backendETag: String
    }

    struct Entry {
        var range: Range<Int>
        var key: Range<Int>?
        var versionID: Range<Int>?
        var etag: Range<Int>?
        var size: Range<Int>?
    }

    /// The multipart entries of `xml` (their keys decoded as the backend needs them).
    static func multipartEntries(_ xml: [UInt8]) -> [MultipartEntry] {
        let urlEncoded = text(of: "EncodingType", in: xml, within: 0..<xml.count) == "url"
        return entries(xml).compactMap { entry in
            guard let etagRange = entry.etag, let sizeRange = entry.size, let keyRange = entry.key,
                  let count = partCount(String(decoding: xml[etagRange], as: UTF8.self)),
                  let stored = number(xml[sizeRange]),
                  let key = decodeKey(String(decoding: xml[keyRange], as: UTF8.self), urlEncoded: urlEncoded) else { return nil }
            let version = entry.versionID.map { unescape(String(decoding: xml[$0], as: UTF8.self)) }
            return MultipartEntry(key: key, versionID: version, storedSize: stored, partCount: count,
                                  backendETag: unescape(String(decoding: xml[etagRange], as: UTF8.self)))
        }
    }

    static func rewrite(_ xml: [UInt8], multipartSizes: [MultipartEntry: Int] = [:]) -> [UInt8] {
        let multipart = Dictionary(multipartEntries(xml).compactMap { entry in
            multipartSizes[entry].map { (entryID(entry), $0) }
        }, uniquingKeysWith: { a, _ in a })
        let urlEncoded = text(of: "EncodingType", in: xml, within: 0..<xml.count) == "url"
        var out: [UInt8] = []
        out.reserveCapacity(xml.count + 64)
        var cursor = 0
        for entry in entries(xml) {
            var edits: [(Range<Int>, [UInt8])] = []
            let etagText = entry.etag.map { String(decoding: xml[$0], as: UTF8.self) }
            if let etagRange = entry.etag, let at = opaqueInsertion(xml[etagRange]) {
                edits.append((at..<at, Array("-1".utf8)))
            }
            if let sizeRange = entry.size, let stored = number(xml[sizeRange]) {
                var plain: Int?
                if let etagText, partCount(etagText) != nil {
                    if let keyRange = entry.key,
                       let key = decodeKey(String(decoding: xml[keyRange], as: UTF8.self), urlEncoded: urlEncoded) {
                        let version = entry.versionID.map { unescape(String(decoding: xml[$0], as: UTF8.self)) }
                        plain = multipart[EntryKey(key: key, versionID: version, storedSize: stored, etag: unescape(etagText))]
                    }
                } else {
                    plain = ChunkLayout.listingPlaintextSize(ciphertextLength: stored)
                }
                if let plain { edits.append((sizeRange, Array(String(plain).utf8))) }
            }
            // Fields nested in each other (a damaged document) are left alone rather than edited twice.
            for (range, replacement) in edits.sorted(by: { $0.0.lowerBound < $1.0.lowerBound }) where range.lowerBound >= cursor {
                out.append(contentsOf: xml[cursor..<range.lowerBound])
                out.append(contentsOf: replacement)
                cursor = range.upperBound
            }
        }
        out.append(contentsOf: xml[cursor...])
        return out
    }

    /// Where `-1` goes in a listed ETag that looks like an MD5 (before its closing `&quot;`, `&#34;` or `"`,
    /// else at its end), so it is visibly not one (`ClientETag`); nil when it contains `-` already. Bytes, so
    /// that nothing else in a document changes, even bytes that are not UTF-8.
    static func opaqueInsertion(_ etag: ArraySlice<UInt8>) -> Int? {
        guard !etag.isEmpty, !etag.contains(UInt8(ascii: "-")) else { return nil }
        for quote in ["&quot;", "&#34;", "\""].map({ Array($0.utf8) }) where etag.count > quote.count && etag.suffix(quote.count).elementsEqual(quote) {
            return etag.endIndex - quote.count
        }
        return etag.endIndex
    }

    private struct EntryKey: Hashable {
        var key: String
        var versionID: String?
        var storedSize: Int
        var etag: String
    }

    private static func entryID(_ entry: MultipartEntry) -> EntryKey {
        EntryKey(key: entry.key, versionID: entry.versionID, storedSize: entry.storedSize, etag: entry.backendETag)
    }

    // MARK: Scanning

    private static let entryTags = ["Contents", "Version"]

    /// The `<Contents>` and `<Version>` entries, in document order, with the ranges of their fields' text.
    static func entries(_ xml: [UInt8]) -> [Entry] {
        var out: [Entry] = []
        var i = 0
        // The next opening tag of each kind, searched again only once the scan has passed it: a listing has one
        // kind only, and searching the absent one from every entry to the end would make the scan quadratic.
        var ahead: [(tag: String, at: Int?)] = entryTags.map { ($0, -1) }
        while i < xml.count {
            var next: (start: Int, tag: String)?
            for index in ahead.indices {
                if let at = ahead[index].at, at < i {
                    ahead[index].at = find(Array("<\(ahead[index].tag)>".utf8), in: xml, from: i, end: xml.count)
                }
                if let at = ahead[index].at, next == nil || at < next!.start { next = (at, ahead[index].tag) }
            }
            guard let (start, tag) = next else { break }
            let bodyStart = start + tag.utf8.count + 2
            guard let end = find(Array("</\(tag)>".utf8), in: xml, from: bodyStart, end: xml.count) else { break }
            let body = bodyStart..<end
            out.append(Entry(range: start..<(end + tag.utf8.count + 3),
                             key: element("Key", in: xml, within: body), versionID: element("VersionId", in: xml, within: body),
                             etag: element("ETag", in: xml, within: body), size: element("Size", in: xml, within: body)))
            i = end + tag.utf8.count + 3
        }
        return out
    }

    /// The range of the text of the first `<name>…</name>` inside `range`.
    private static func element(_ name: String, in xml: [UInt8], within range: Range<Int>) -> Range<Int>? {
        guard let open = find(Array("<\(name)>".utf8), in: xml, from: range.lowerBound, end: range.upperBound) else { return nil }
        let start = open + name.utf8.count + 2
        guard let close = find(Array("</\(name)>".utf8), in: xml, from: start, end: range.upperBound) else { return nil }
        return start..<close
    }

    private static func text(of name: String, in xml: [UInt8], within range: Range<Int>) -> String? {
        element(name, in: xml, within: range).map { String(decoding: xml[$0], as: UTF8.self) }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int, end: Int) -> Int? {
        guard !needle.isEmpty, start >= 0, needle.count <= end - start else { return nil }
        let first = needle[0]
        var i = start
        while i + needle.count <= end {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// A decimal of at most 18 digits.
    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(String(decoding: digits, as: UTF8.self))
    }

    /// `N` of a multipart ETag `"…-N"` (any quoting), nil for other ETags.
    static func partCount(_ etag: String) -> Int? {
        let tag = unescape(etag).trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        guard let dash = tag.lastIndex(of: "-"), let n = Int(tag[tag.index(after: dash)...]), n >= 1, n <= 10_000 else { return nil }
        return n
    }

    /// XML text with the predefined and numeric entities decoded.
    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";"), rest.distance(from: amp, to: semi) <= 10 else {
                out += rest[amp...]
                return out
            }
            let name = rest[rest.index(after: amp)..<semi]
            switch name {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                var scalar: Unicode.Scalar?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    scalar = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                } else if name.hasPrefix("#") {
                    scalar = UInt32(name.dropFirst(), radix: 10).flatMap(Unicode.Scalar.init)
                }
                guard let scalar else { out += rest[amp...semi]; rest = rest[rest.index(after: semi)...]; continue }
                out.unicodeScalars.append(scalar)
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }

    private static func decodeKey(_ text: String, urlEncoded: Bool) -> String? {
        let key = unescape(text)
        guard urlEncoded else { return key }
        return URIEncoding.decode(Substring(key.replacingOccurrences(of: "+", with: "%20")))
    }
}
