/// Rewrites the `<Size>` of ListObjects/ListObjectsV2/ListObjectVersions entries from stored
/// (ciphertext) sizes to plaintext sizes with the listing conversion of docs/FORMAT.md §6
/// (default chunk size), leaving every other byte of the document unchanged.
///
/// Entries with a multipart ETag (`"…-N"`) are converted as multipart objects of N parts (FORMAT.md §9.4, exact
/// when the parts are chunk multiples); entries whose size no writer of the format produces keep their stored size.
enum ListingSizeRewriter {
    private static let entryTags: [[UInt8]] = [Array("<Contents>".utf8), Array("<Version>".utf8)]
    private static let sizeOpen = Array("<Size>".utf8)
    private static let sizeClose = Array("</Size>".utf8)
    private static let etagOpen = Array("<ETag>".utf8)
    private static let etagClose = Array("</ETag>".utf8)

    static func rewrite(_ xml: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(xml.count)
        var i = 0
        while i < xml.count {
            guard let (entryStart, open) = nextEntry(in: xml, from: i) else { break }
            let closeTag = Array("</".utf8) + open.dropFirst()
            guard let entryEnd = find(closeTag, in: xml, from: entryStart, end: xml.count) else { break }
            out.append(contentsOf: xml[i..<entryStart])
            out.append(contentsOf: rewriteEntry(xml[entryStart..<entryEnd]))
            i = entryEnd
        }
        out.append(contentsOf: xml[i...])
        return out
    }

    private static func nextEntry(in xml: [UInt8], from start: Int) -> (Int, [UInt8])? {
        var best: (Int, [UInt8])?
        for tag in entryTags {
            if let at = find(tag, in: xml, from: start, end: xml.count), best == nil || at < best!.0 { best = (at, tag) }
        }
        return best
    }

    private static func rewriteEntry(_ entry: ArraySlice<UInt8>) -> [UInt8] {
        let bytes = Array(entry)
        guard let sizeStart = find(sizeOpen, in: bytes, from: 0, end: bytes.count),
              let sizeEnd = find(sizeClose, in: bytes, from: sizeStart, end: bytes.count) else { return bytes }
        var etag = ""
        if let etagStart = find(etagOpen, in: bytes, from: 0, end: bytes.count),
           let etagEnd = find(etagClose, in: bytes, from: etagStart, end: bytes.count) {
            etag = String(decoding: bytes[(etagStart + etagOpen.count)..<etagEnd], as: UTF8.self)
        }
        let digits = bytes[(sizeStart + sizeOpen.count)..<sizeEnd]
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let stored = Int(String(decoding: digits, as: UTF8.self)),
              let plain = ChunkLayout.listingPlaintextSize(storedSize: stored, etag: etag) else { return bytes }
        return Array(bytes[..<(sizeStart + sizeOpen.count)]) + Array(String(plain).utf8) + Array(bytes[sizeEnd...])
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int, end: Int) -> Int? {
        guard needle.count <= end - start else { return nil }
        var i = start
        let first = needle[0]
        while i + needle.count <= end {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
