/// What a GET (or ranged GET) of a stored multipart object needs (docs/FORMAT.md §9.2), decided from its
/// geometry and the client's `Range` header before any body byte moves: the answer's status and headers, the
/// part headers to fetch and check first, and the one backend range that covers the requested plaintext
/// (from the first needed chunk of the first part to the last needed chunk of the last, across part headers).
public struct MultipartReadPlan: Sendable, Equatable {
    /// 200, 206 or 416.
    public let status: Int
    public let plaintextLength: Int
    /// `Content-Length` of the answer (0 for 416).
    public let contentLength: Int
    /// `Content-Range` of the answer (206 and 416).
    public let contentRange: String?
    /// First and last part touched (1-based indices); meaningless for 416.
    public let firstIndex: Int
    public let lastIndex: Int
    /// Parts whose headers must be fetched and checked against the geometry (`MultipartGeometry.verify`)
    /// before answering: the first and last part touched, unless the geometry already read them.
    public let headersToFetch: [Int]
    /// Inclusive stored byte range to fetch (starts after the first part's header); nil for 416.
    public let backendFirst: Int
    public let backendLast: Int
    /// Chunk index to start opening the first part at, and plaintext bytes to drop from it.
    public let firstChunk: Int
    public let skip: Int
    /// Last chunk needed of the last part, and whether it is that part's final chunk.
    public let lastChunk: Int
    public let lastChunkIsFinal: Bool
    /// Plaintext the parts before the last one yield from `firstChunk` on (checked when the last part starts).
    public let plaintextBeforeLastPart: Int

    public var backendRange: String? { status == 416 ? nil : "bytes=\(backendFirst)-\(backendLast)" }
    public var ciphertextLength: Int { status == 416 ? 0 : backendLast - backendFirst + 1 }

    public init(geometry: MultipartGeometry, rangeHeader: String?) {
        let size = geometry.plaintextLength
        plaintextLength = size
        let resolution = rangeHeader.flatMap(ByteRange.parse)?.resolve(size: size)
        let first: Int, last: Int
        switch resolution {
        case .unsatisfiable?:
            status = 416
            contentLength = 0
            contentRange = ByteRange.unsatisfiableContentRange(size: size)
            firstIndex = 0; lastIndex = 0; headersToFetch = []
            backendFirst = 0; backendLast = -1
            firstChunk = 0; skip = 0; lastChunk = 0; lastChunkIsFinal = true; plaintextBeforeLastPart = 0
            return
        case .satisfiable(let a, let b)?:
            status = 206
            contentRange = ByteRange.contentRange(first: a, last: b, size: size)
            (first, last) = (a, b)
            contentLength = b - a + 1
        case nil:
            status = 200
            contentRange = nil
            contentLength = size
            (first, last) = (0, size - 1)
        }
        let layout = geometry.chunkLayout
        let c = layout.chunkSize
        let sealed = layout.sealedChunkSize
        if size == 0 {
            // Only parts without plaintext: read and verify all of them (each one empty final chunk).
            firstIndex = 1
            lastIndex = geometry.count
            firstChunk = 0
            skip = 0
            lastChunk = 0
        } else {
            firstIndex = geometry.index(containing: first)
            lastIndex = geometry.index(containing: last)
            let within = first - geometry.extent(firstIndex).plaintextOffset
            firstChunk = within / c
            skip = within - firstChunk * c
            lastChunk = (last - geometry.extent(lastIndex).plaintextOffset) / c
        }
        let startPart = geometry.extent(firstIndex)
        let endPart = geometry.extent(lastIndex)
        lastChunkIsFinal = lastChunk == layout.chunkCount(plaintextLength: endPart.plaintextLength) - 1
        backendFirst = startPart.storedOffset + PartHeader.size + firstChunk * sealed
        backendLast = endPart.storedOffset + PartHeader.size
            + min((lastChunk + 1) * sealed, layout.ciphertextLength(plaintextLength: endPart.plaintextLength)) - 1
        plaintextBeforeLastPart = endPart.plaintextOffset - (startPart.plaintextOffset + firstChunk * c)
        headersToFetch = Array(Set([firstIndex, lastIndex])).sorted().filter { geometry.knownHeaders[$0] == nil }
    }
}

extension MultipartGeometry {
    /// Checks a header fetched at `extent(index).storedOffset` against the geometry: the part number and
    /// length it must have. A mismatch means the parts are not uniform after all (the caller walks instead).
    public func verify(_ header: PartHeader, index: Int) -> Bool {
        let extent = extent(index)
        return header.partNumber == extent.partNumber && header.plaintextLength == extent.plaintextLength
    }
}

/// Decrypts the backend bytes of a `MultipartReadPlan`: the first part from its planned chunk, whole middle
/// parts behind their in-stream headers, the last part up to its planned chunk. Checks that exactly the
/// planned number of bytes arrived and that the last part's in-stream header is the one checked before
/// answering; emits exactly the planned plaintext. I/O-free; only verified plaintext reaches `emit`.
public final class MultipartRangeReader {
    public let plan: MultipartReadPlan
    private let metadata: EncryptionMetadata
    private let dataKey: DataKey
    private let encryptor: ObjectEncryptor
    private let layout: ChunkLayout
    private let lastHeader: PartHeader
    private var window: PlaintextWindow
    private var received = 0

    private var opener: ChunkOpener
    /// Header of the part being opened.
    private var current: PartHeader
    /// Stored bytes of the current part's segment still to come in this plan.
    private var remaining: Int
    private var headerBuffer: [UInt8] = []
    private var done = false
    /// Plaintext opened so far (inside and outside the window).
    private var produced = 0

    /// - Parameter headers: the headers of the plan's first and last parts (known or fetched and verified).
    public init(plan: MultipartReadPlan, geometry: MultipartGeometry, headers: [Int: PartHeader], encryptor: ObjectEncryptor,
                metadata: EncryptionMetadata, dataKey: DataKey) throws(EncryptionError) {
        guard plan.status != 416 else { throw EncryptionError(.invalidParameter, "an unsatisfiable range has no body to read") }
        guard let first = headers[plan.firstIndex], let last = headers[plan.lastIndex] else {
            throw EncryptionError(.invalidParameter, "the headers of parts \(plan.firstIndex) and \(plan.lastIndex) are needed")
        }
        self.plan = plan
        self.metadata = metadata
        self.dataKey = dataKey
        self.encryptor = encryptor
        self.layout = geometry.chunkLayout
        self.lastHeader = last
        window = PlaintextWindow(skip: plan.skip, length: plan.contentLength)
        current = first
        remaining = Self.segmentBytes(first, from: plan.firstChunk, to: plan.firstIndex == plan.lastIndex ? plan.lastChunk : nil, layout: layout)
        // The part's planned bytes announced: its chunks split across pieces are opened as they arrive (and may be
        // handed over), as a single-part read's are.
        opener = try encryptor.partOpener(for: metadata, dataKey: dataKey, header: first, firstChunkIndex: plan.firstChunk,
                                          maxCiphertextLength: remaining)
    }

    /// Stored bytes of `header`'s segment from chunk `from` through chunk `to` (nil: to its end).
    private static func segmentBytes(_ header: PartHeader, from: Int, to: Int?, layout: ChunkLayout) -> Int {
        let whole = layout.ciphertextLength(plaintextLength: header.plaintextLength)
        let end = to.map { min(($0 + 1) * layout.sealedChunkSize, whole) } ?? whole
        return end - from * layout.sealedChunkSize
    }

    private var isLastPart: Bool { current == lastHeader }

    public func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try feed(input, space: ChunkOpener.noSpace, emit: emit, deferring: nil)
    }

    /// `update(_:emit:)` decrypting chunks straight into the caller's `space` (`ChunkOpener.update(_:space:emit:)`).
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try feed(input, space: space, emit: emit, deferring: nil)
    }

    /// Hands over only chunks wholly inside the range wanted, as `PlannedReader` does; a part's last chunk is opened
    /// here (it is its segment's final chunk).
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral?) throws {
        guard let deferring else { return try feed(input, space: space, emit: emit, deferring: nil) }
        let chunkSize = layout.chunkSize
        let windowed = ChunkDeferral(wants: { self.window.coversWhole(chunkSize) && deferring.wants() },
                                     take: { chunk in
                                         self.produced += chunkSize
                                         self.window.passWhole(chunkSize)
                                         try deferring.take(chunk)
                                     })
        try feed(input, space: space, emit: emit, deferring: windowed)
    }

    private func feed(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                      emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral?) throws {
        received += input.count
        guard received <= plan.ciphertextLength else {
            throw EncryptionError(.trailingData, "the backend sent more than the \(plan.ciphertextLength) bytes planned")
        }
        var rest = input[...]
        while !rest.isEmpty {
            if remaining > 0 {
                let take = min(remaining, rest.count)
                try opener.update(UnsafeRawBufferPointer(rebasing: rest.prefix(take)), space: space,
                                  emit: { try self.emitWindowed($0, emit) }, deferring: deferring)
                remaining -= take
                rest = rest.dropFirst(take)
                if remaining == 0 && !isLastPart {
                    try opener.finish(lastChunkIsFinal: true) { try self.emitWindowed($0, emit) }
                }
            } else {
                guard !isLastPart else {
                    throw EncryptionError(.trailingData, "data follows the last planned chunk of part \(current.partNumber)")
                }
                let take = min(PartHeader.size - headerBuffer.count, rest.count)
                headerBuffer.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                if headerBuffer.count == PartHeader.size { try nextPart() }
            }
        }
    }

    public func update(_ input: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try input.withUnsafeBytes { try update($0, emit: emit) }
    }

    private func nextPart() throws {
        let header = try PartHeader.parse(headerBuffer)
        headerBuffer.removeAll(keepingCapacity: true)
        guard header.partNumber > current.partNumber, header.partNumber <= lastHeader.partNumber else {
            throw EncryptionError(.tamperDetected, "part \(header.partNumber) follows part \(current.partNumber): parts were reordered, duplicated or dropped")
        }
        if header.partNumber == lastHeader.partNumber {
            // The last part's header was checked before answering; the stream must carry that very part, and the
            // parts before it exactly the plaintext the geometry promised (else the output would be shifted).
            guard header == lastHeader else {
                throw EncryptionError(.tamperDetected, "part \(header.partNumber) changed while it was being read")
            }
            guard produced == plan.plaintextBeforeLastPart else {
                throw EncryptionError(.tamperDetected, "the parts before part \(header.partNumber) hold \(produced) plaintext bytes, not the \(plan.plaintextBeforeLastPart) their geometry promises")
            }
        }
        current = header
        remaining = Self.segmentBytes(header, from: 0, to: header == lastHeader ? plan.lastChunk : nil, layout: layout)
        opener = try encryptor.partOpener(for: metadata, dataKey: dataKey, header: header, firstChunkIndex: 0,
                                          maxCiphertextLength: remaining)
    }

    private func emitWindowed(_ chunk: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        produced += chunk.count
        let slice = window.slice(chunk)
        if !slice.isEmpty { try emit(slice) }
    }

    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !done else { throw ChunkOpener.misuse }
        done = true
        guard received == plan.ciphertextLength else {
            throw EncryptionError(.truncated, "the backend sent \(received) of the \(plan.ciphertextLength) bytes planned")
        }
        guard isLastPart, remaining == 0, headerBuffer.isEmpty else {
            throw EncryptionError(.truncated, "the planned bytes end inside part \(current.partNumber): the object's parts are not where its headers say")
        }
        try opener.finish(lastChunkIsFinal: plan.lastChunkIsFinal) { try self.emitWindowed($0, emit) }
        guard window.isComplete else {
            throw EncryptionError(.tamperDetected, "the parts between \(plan.firstIndex) and \(plan.lastIndex) hold fewer plaintext bytes than their headers promise")
        }
    }
}

/// Everything a read of a multipart object needs before its response starts: the geometry, the plan and the
/// checked headers of the first and last part touched. `prepare` runs the locate–plan–check loop of
/// docs/FORMAT.md §9.2 with the small header reads injected, so handlers and tests share it.
public struct MultipartReadSetup: Sendable {
    public let geometry: MultipartGeometry
    public let plan: MultipartReadPlan
    /// Headers of `plan.firstIndex` and `plan.lastIndex` (and whatever else the geometry knows).
    public let headers: [Int: PartHeader]
    /// Header reads it took.
    public let headerReads: Int

    /// - Parameters:
    ///   - geometry: a geometry learned earlier for the same stored object (e.g. cached), if any.
    ///   - fetchHeader: reads the 36 stored bytes at an offset (a ranged GET of the same object version).
    public static func prepare(storedLength: Int, chunkLayout: ChunkLayout, partCountHint: Int?, rangeHeader: String?,
                               geometry known: MultipartGeometry? = nil,
                               fetchHeader: (Int) throws -> [UInt8]) throws -> MultipartReadSetup {
        var reads = 0
        func bytes(at offset: Int) throws -> [UInt8] {
            reads += 1
            return try fetchHeader(offset)
        }
        func header(at offset: Int) throws -> PartHeader {
            try PartHeader.parse(bytes(at: offset))
        }
        func locate(forceWalk: Bool) throws -> MultipartGeometry {
            var locator = MultipartLocator(storedLength: storedLength, chunkLayout: chunkLayout, partCountHint: partCountHint,
                                           walkOnly: forceWalk)
            var step = locator.start()
            while true {
                switch step {
                case .readHeader(let offset): step = try locator.received(try bytes(at: offset), at: offset)
                case .done(let geometry): return geometry
                }
            }
        }
        var geometry = try known ?? locate(forceWalk: false)
        while true {
            let plan = MultipartReadPlan(geometry: geometry, rangeHeader: rangeHeader)
            var headers = geometry.knownHeaders
            var consistent = true
            for index in plan.headersToFetch {
                // A header that is not where a uniform geometry puts it (or not a header at all) means the
                // parts are not uniform after all: walk them.
                guard let fetched = try? header(at: geometry.extent(index).storedOffset), geometry.verify(fetched, index: index) else {
                    consistent = false
                    break
                }
                headers[index] = fetched
            }
            if consistent {
                return MultipartReadSetup(geometry: geometry, plan: plan, headers: headers, headerReads: reads)
            }
            guard geometry.isUniform else {
                throw EncryptionError(.tamperDetected, "a part header changed while the object was being read")
            }
            geometry = try locate(forceWalk: true)
        }
    }
}
