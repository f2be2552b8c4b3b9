/// Incremental decoder of a WATCH response body: newline-delimited JSON objects `{"type": …, "object": …}`.
///
/// Pure and bounded: feed it bytes split anywhere, it returns the complete events so far. A line longer than
/// `maxLineLength` or an undecodable line is an error (the stream is unusable after it: the caller ends the watch).
struct WatchStreamDecoder {
    /// Largest accepted event line in bytes (Kubernetes objects are limited to ~1.5 MiB in etcd; 16 MiB is generous).
    let maxLineLength: Int
    private var buffer: [UInt8] = []
    /// Bytes of `buffer` already known to contain no newline (avoids rescanning on every small chunk).
    private var scanned = 0
    private(set) var failed = false

    init(maxLineLength: Int = 16 << 20) {
        self.maxLineLength = maxLineLength
    }

    /// Bytes held for an incomplete line.
    var pendingByteCount: Int { buffer.count }

    mutating func feed(_ bytes: some Collection<UInt8>) throws(KubeError) -> [WatchEvent] {
        guard !failed else { throw .decoding("watch stream: decoder already failed") }
        buffer.append(contentsOf: bytes)
        var events: [WatchEvent] = []
        var lineStart = 0
        var i = scanned
        while i < buffer.count {
            if buffer[i] == UInt8(ascii: "\n") {
                let line = buffer[lineStart..<i]
                if line.count > maxLineLength { try fail("watch event line longer than \(maxLineLength) bytes") }
                if let event = try decodeLine(line) { events.append(event) }
                lineStart = i + 1
            }
            i += 1
        }
        buffer.removeFirst(lineStart)
        scanned = buffer.count
        if buffer.count > maxLineLength { try fail("watch event line longer than \(maxLineLength) bytes") }
        return events
    }

    /// Call at the end of the stream: a trailing line without newline is still an event; garbage is an error.
    mutating func finish() throws(KubeError) -> [WatchEvent] {
        guard !failed else { return [] }
        defer { buffer = []; scanned = 0 }
        if let e = try decodeLine(buffer[...]) { return [e] }
        return []
    }

    private mutating func fail(_ message: String) throws(KubeError) -> Never {
        failed = true
        buffer = []
        scanned = 0
        throw .decoding(message)
    }

    private mutating func decodeLine(_ line: ArraySlice<UInt8>) throws(KubeError) -> WatchEvent? {
        // Blank lines (and a lone CR) are tolerated as keep-alives.
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { return nil }
        let value: JSONValue
        do { value = try JSONValue.parse(line) } catch { try fail("watch event is not JSON: \(error)") }
        do { return try Self.event(from: value) } catch { try fail("\(error)") }
    }

    /// Interprets one decoded `{"type","object"}` envelope.
    static func event(from value: JSONValue) throws(KubeError) -> WatchEvent {
        guard let type = value["type"]?.string else { throw .decoding("watch event without \"type\"") }
        guard let object = value["object"], object.object != nil else {
            throw .decoding("watch event \(type) without an \"object\"")
        }
        switch type {
        case "ADDED": return .added(object)
        case "MODIFIED": return .modified(object)
        case "DELETED": return .deleted(object)
        case "BOOKMARK":
            guard let rv = object.resourceVersion else { throw .decoding("BOOKMARK without metadata.resourceVersion") }
            return .bookmark(resourceVersion: rv)
        case "ERROR": return .error(status: object)
        default: throw .decoding("unknown watch event type \"\(type.prefix(64))\"")
        }
    }
}
