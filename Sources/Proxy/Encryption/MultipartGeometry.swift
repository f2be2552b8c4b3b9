/// Where one part of a stored multipart object lies, in plaintext and in the stored bytes (docs/FORMAT.md §9).
public struct PartExtent: Sendable, Equatable {
    /// 1-based position among the object's parts.
    public let index: Int
    public let partNumber: Int
    public let plaintextOffset: Int
    public let plaintextLength: Int
    /// Offset of the part's 36-byte header in the stored object.
    public let storedOffset: Int

    /// `36 + L(plaintextLength)`.
    public func storedLength(_ layout: ChunkLayout) -> Int {
        PartHeader.size + layout.ciphertextLength(plaintextLength: plaintextLength)
    }
}

/// The part geometry of a stored multipart object: how many parts, how long each is, where each starts.
/// Built by `MultipartLocator` from the stored size and a few part headers.
public struct MultipartGeometry: Sendable, Equatable {
    public enum Parts: Sendable, Equatable {
        /// Parts 1…count−1 of `partSize` plaintext bytes and a last part of `lastSize`, numbered 1…count. Exact
        /// because the writer refuses part lists that could look uniform without being so (§9.3) and the reader
        /// checks each header it relies on.
        case uniform(partSize: Int, count: Int, lastSize: Int)
        /// Every part's extent, from walking all headers.
        case listed([PartExtent])
    }

    public let chunkLayout: ChunkLayout
    public let storedLength: Int
    public let parts: Parts
    /// Headers already read (a uniform geometry knows the first and last; a listed one all).
    public let knownHeaders: [Int: PartHeader]

    public var count: Int {
        switch parts {
        case .uniform(_, let count, _): return count
        case .listed(let extents): return extents.count
        }
    }

    public var plaintextLength: Int {
        switch parts {
        case .uniform(let size, let count, let last): return size * (count - 1) + last
        case .listed(let extents): return extents.last.map { $0.plaintextOffset + $0.plaintextLength } ?? 0
        }
    }

    /// The same geometry also knowing `headers` (by part index), e.g. those a read fetched and checked with
    /// `verify`, so a later read of those parts needs no header read of its own.
    public func knowing(_ headers: [Int: PartHeader]) -> MultipartGeometry {
        let merged = knownHeaders.merging(headers.filter { $0.key >= 1 && $0.key <= count }) { known, _ in known }
        return MultipartGeometry(chunkLayout: chunkLayout, storedLength: storedLength, parts: parts, knownHeaders: merged)
    }

    public var isUniform: Bool {
        if case .uniform = parts { return true }
        return false
    }

    /// The extent of part `index` (1…count).
    public func extent(_ index: Int) -> PartExtent {
        precondition(index >= 1 && index <= count, "part index \(index) outside 1…\(count)")
        switch parts {
        case .uniform(let size, let count, let last):
            let stored = PartHeader.size + chunkLayout.ciphertextLength(plaintextLength: size)
            return PartExtent(index: index, partNumber: index, plaintextOffset: (index - 1) * size,
                              plaintextLength: index == count ? last : size, storedOffset: (index - 1) * stored)
        case .listed(let extents):
            return extents[index - 1]
        }
    }

    /// The index of the part holding plaintext byte `offset` (0 ≤ offset < plaintextLength).
    public func index(containing offset: Int) -> Int {
        precondition(offset >= 0 && offset < plaintextLength, "offset \(offset) outside the object")
        switch parts {
        case .uniform(let size, let count, _):
            return min(offset / size + 1, count)
        case .listed(let extents):
            // The last part starting at or before `offset`; empty parts hold no byte and are passed over.
            var low = 0, high = extents.count - 1
            while low < high {
                let mid = (low + high + 1) / 2
                if extents[mid].plaintextOffset <= offset { low = mid } else { high = mid - 1 }
            }
            while extents[low].plaintextLength == 0 || extents[low].plaintextOffset + extents[low].plaintextLength <= offset {
                low -= 1   // only reached through empty parts at the same offset
            }
            return low + 1
        }
    }
}

/// Learns a multipart object's geometry with as few small reads as possible (docs/FORMAT.md §9.2), as an
/// I/O-free state machine: it asks for the 36-byte part header at a stored offset, the caller fetches it
/// (a ranged GET) and hands it back, until the geometry is known.
///
/// Uniform part sizes (every client's default) take two reads: the first header gives the part size `S`, the
/// header where the last part must start if the parts are uniform confirms it (its part number is the part
/// count and it ends exactly at the stored size). Anything else walks the headers one by one.
public struct MultipartLocator: Sendable {
    public enum Step: Sendable, Equatable {
        /// Fetch `bytes=offset-(offset+35)` and call `received(_:at:)` with the bytes.
        case readHeader(at: Int)
        case done(MultipartGeometry)
    }

    public let storedLength: Int
    public let chunkLayout: ChunkLayout
    /// The part count the backend's ETag names (`"…-N"`), if any: a hint, checked against the headers.
    public let partCountHint: Int?
    /// Reads made so far.
    public private(set) var reads = 0

    private enum State: Sendable {
        case start
        case confirmingLast(first: PartHeader, count: Int, offset: Int)
        case walking(extents: [PartExtent], headers: [Int: PartHeader], offset: Int)
        case finished
    }
    private var state = State.start

    /// Walk every header instead of trying the uniform shortcut.
    public let walkOnly: Bool

    public init(storedLength: Int, chunkLayout: ChunkLayout, partCountHint: Int?, walkOnly: Bool = false) {
        self.storedLength = storedLength
        self.chunkLayout = chunkLayout
        self.partCountHint = partCountHint
        self.walkOnly = walkOnly
    }

    public mutating func start() -> Step { .readHeader(at: 0) }

    /// Takes the 36 bytes read at `offset` (the offset the last step asked for).
    public mutating func received(_ bytes: [UInt8], at offset: Int) throws(EncryptionError) -> Step {
        reads += 1
        if case .confirmingLast(let first, _, let lastOffset) = state, offset == lastOffset, (try? PartHeader.parse(bytes)) == nil {
            // No header where a uniform object has its last part: not uniform, walk from the second part.
            return try walk(from: [], headers: [:], offset: 0, adding: first)
        }
        let header = try PartHeader.parse(bytes)
        switch state {
        case .start:
            guard offset == 0 else { throw Self.misuse }
            let stored = header.storedLength(chunkLayout)
            guard stored <= storedLength else { throw truncated(part: header.partNumber) }
            if walkOnly || stored == storedLength || header.partNumber != 1 || header.plaintextLength == 0 {
                return try walk(from: [], headers: [:], offset: 0, adding: header)
            }
            let count: Int
            if let hint = partCountHint, hint >= 2 {
                count = hint
            } else {
                // No hint: the count the stored size allows if every part but the last has `stored` bytes.
                count = (storedLength - Self.minimumPartSize(chunkLayout)) / stored + 1
            }
            let lastOffset = (count - 1) * stored
            guard count >= 2, count <= FormatV1.maxPartNumber,
                  lastOffset + Self.minimumPartSize(chunkLayout) <= storedLength else {
                return try walk(from: [], headers: [:], offset: 0, adding: header)
            }
            state = .confirmingLast(first: header, count: count, offset: lastOffset)
            return .readHeader(at: lastOffset)
        case .confirmingLast(let first, let count, let lastOffset):
            guard offset == lastOffset else { throw Self.misuse }
            if header.partNumber == count, lastOffset + header.storedLength(chunkLayout) == storedLength {
                state = .finished
                let geometry = MultipartGeometry(chunkLayout: chunkLayout, storedLength: storedLength,
                                                 parts: .uniform(partSize: first.plaintextLength, count: count, lastSize: header.plaintextLength),
                                                 knownHeaders: [1: first, count: header])
                return .done(geometry)
            }
            // Not uniform (or not numbered 1…N): walk from the second part.
            return try walk(from: [], headers: [:], offset: 0, adding: first)
        case .walking(let extents, let headers, let expected):
            guard offset == expected else { throw Self.misuse }
            return try walk(from: extents, headers: headers, offset: expected, adding: header)
        case .finished:
            throw Self.misuse
        }
    }

    private mutating func walk(from extents: [PartExtent], headers: [Int: PartHeader], offset: Int,
                               adding header: PartHeader) throws(EncryptionError) -> Step {
        var extents = extents
        var headers = headers
        if let previous = extents.last, header.partNumber <= previous.partNumber {
            throw EncryptionError(.tamperDetected, "part \(header.partNumber) follows part \(previous.partNumber): parts were reordered or duplicated")
        }
        let plaintextOffset = extents.last.map { $0.plaintextOffset + $0.plaintextLength } ?? 0
        let extent = PartExtent(index: extents.count + 1, partNumber: header.partNumber, plaintextOffset: plaintextOffset,
                                plaintextLength: header.plaintextLength, storedOffset: offset)
        extents.append(extent)
        headers[extent.index] = header
        let next = offset + extent.storedLength(chunkLayout)
        if next == storedLength {
            state = .finished
            return .done(MultipartGeometry(chunkLayout: chunkLayout, storedLength: storedLength, parts: .listed(extents), knownHeaders: headers))
        }
        guard next + PartHeader.size <= storedLength, extents.count < FormatV1.maxPartNumber else {
            throw truncated(part: header.partNumber)
        }
        state = .walking(extents: extents, headers: headers, offset: next)
        return .readHeader(at: next)
    }

    /// The stored size of an empty part: its header and one tag.
    static func minimumPartSize(_ layout: ChunkLayout) -> Int {
        PartHeader.size + layout.ciphertextLength(plaintextLength: 0)
    }

    private func truncated(part: Int) -> EncryptionError {
        EncryptionError(.truncated, "the multipart object's stored size \(storedLength) ends inside part \(part): it was truncated or is not gateway ciphertext")
    }

    static let misuse = EncryptionError(.invalidParameter, "MultipartLocator fed a header it did not ask for")
}

extension PartHeader {
    /// `36 + L(plaintextLength)` under `layout`.
    public func storedLength(_ layout: ChunkLayout) -> Int {
        PartHeader.size + layout.ciphertextLength(plaintextLength: plaintextLength)
    }
}
