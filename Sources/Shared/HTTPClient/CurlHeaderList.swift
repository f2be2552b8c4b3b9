import CCurl

/// A request's header lines as the `curl_slist` libcurl reads through `CURLOPT_HTTPHEADER`, in memory one easy
/// handle owns and reuses: no node and no copy of a line allocated per header per request, as `curl_slist_append`
/// does (two mallocs and two frees each, about 1.2 k instructions per header with the line assembly; issue 12).
/// libcurl 7.88 keeps the list pointer it is given and only reads the lines, for the transfer it runs
/// (lib/setopt.c `CURLOPT_HTTPHEADER`, lib/http.c `Curl_add_custom_headers`), so the list stays valid until the
/// next `reset`. Used by one thread at a time (the handle's).
final class CurlHeaderList {
    /// The lines, each NUL-terminated, back to back.
    private var bytes: UnsafeMutablePointer<CChar>
    private var capacity: Int
    private var used = 0
    /// Where each line starts in `bytes`. Unchecked exclusivity: one thread at a time, and no access to it
    /// overlaps another (each is one append, removeAll or read, with no call out in between); the dynamic check
    /// cost ≈ 80 instructions per header line (issue 12).
    @exclusivity(unchecked) private var starts: [Int] = []
    private var nodes: UnsafeMutablePointer<curl_slist>
    private var nodeCapacity: Int

    init() {
        capacity = 1024
        bytes = .allocate(capacity: capacity)
        nodeCapacity = 16
        nodes = .allocate(capacity: nodeCapacity)
        starts.reserveCapacity(nodeCapacity)
    }

    deinit {
        bytes.deallocate()
        nodes.deallocate()
    }

    /// Forgets the lines (the previous list must no longer be in use).
    func reset() {
        used = 0
        starts.removeAll(keepingCapacity: true)
    }

    /// Adds `name: value`, or `name;` for an empty value (how libcurl is told to send a header with no value).
    func append(name: String, value: String) {
        var name = name, value = value
        name.withUTF8 { n in
            value.withUTF8 { v in
                let length = v.isEmpty ? n.count + 1 : n.count + 2 + v.count
                let at = reserveLine(length)
                copy(n, to: at)
                if v.isEmpty {
                    bytes[at + n.count] = CChar(UInt8(ascii: ";"))
                } else {
                    bytes[at + n.count] = CChar(UInt8(ascii: ":"))
                    bytes[at + n.count + 1] = CChar(UInt8(ascii: " "))
                    copy(v, to: at + n.count + 2)
                }
            }
        }
    }

    /// Adds a line as given (`Accept:`, which tells libcurl not to send a header of its own).
    func append(line: StaticString) {
        let source = UnsafeBufferPointer(start: line.utf8Start, count: line.utf8CodeUnitCount)
        copy(source, to: reserveLine(source.count))
    }

    /// The lines as a linked `curl_slist` (nil when there are none), valid until the next `append` or `reset`.
    func list() -> UnsafeMutablePointer<curl_slist>? {
        guard !starts.isEmpty else { return nil }
        if starts.count > nodeCapacity {
            nodes.deallocate()
            nodeCapacity = max(starts.count, 2 * nodeCapacity)
            nodes = .allocate(capacity: nodeCapacity)
        }
        for (i, start) in starts.enumerated() {
            let next = i + 1 < starts.count ? nodes + (i + 1) : nil
            (nodes + i).initialize(to: curl_slist(data: bytes + start, next: next))
        }
        return nodes
    }

    /// The lines as libcurl reads them (for tests).
    var lines: [String] {
        var out: [String] = []
        var node = list()
        while let current = node {
            out.append(String(cString: current.pointee.data))
            node = current.pointee.next
        }
        return out
    }

    /// Room for a line of `length` bytes and its NUL; returns where the line starts.
    private func reserveLine(_ length: Int) -> Int {
        let needed = used + length + 1
        if needed > capacity {
            var grown = 2 * capacity
            while grown < needed { grown *= 2 }
            let moved = UnsafeMutablePointer<CChar>.allocate(capacity: grown)
            moved.update(from: bytes, count: used)
            bytes.deallocate()
            bytes = moved
            capacity = grown
        }
        let at = used
        starts.append(at)
        bytes[at + length] = 0
        used = needed
        return at
    }

    private func copy(_ source: UnsafeBufferPointer<UInt8>, to offset: Int) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        UnsafeMutableRawPointer(bytes + offset).copyMemory(from: base, byteCount: source.count)
    }
}
