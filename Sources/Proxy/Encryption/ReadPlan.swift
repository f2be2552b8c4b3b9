/// What a GET (or ranged GET) of a stored single-part encrypted object needs, decided from the
/// stored size, the object's chunk layout and the client's `Range` header, before any body
/// bytes move: the answer's status and headers, the backend range to fetch, and how to open it.
public struct ReadPlan: Sendable, Equatable {
    /// 200, 206 or 416.
    public let status: Int
    public let plaintextLength: Int
    /// `Content-Length` of the answer (0 for 416).
    public let contentLength: Int
    /// `Content-Range` of the answer (206 and 416).
    public let contentRange: String?
    /// `Range` to send to the backend; nil fetches the whole object (and nothing is fetched for 416).
    public let backendRange: String?
    /// Ciphertext bytes the backend must return.
    public let ciphertextLength: Int
    public let firstChunkIndex: Int
    public let lastChunkIsFinal: Bool
    public let skip: Int

    /// - Parameters:
    ///   - storedLength: the backend object's size (ciphertext).
    ///   - rangeHeader: the client's `Range` value, if any.
    public init(storedLength: Int, layout: ChunkLayout, rangeHeader: String?) throws(EncryptionError) {
        let size = try layout.plaintextLength(ciphertextLength: storedLength)
        plaintextLength = size
        let resolution = rangeHeader.flatMap(ByteRange.parse)?.resolve(size: size)
        switch resolution {
        case nil:
            status = 200
            contentLength = size
            contentRange = nil
            backendRange = nil
            ciphertextLength = storedLength
            firstChunkIndex = 0
            lastChunkIsFinal = true
            skip = 0
        case .unsatisfiable:
            status = 416
            contentLength = 0
            contentRange = ByteRange.unsatisfiableContentRange(size: size)
            backendRange = nil
            ciphertextLength = 0
            firstChunkIndex = 0
            lastChunkIsFinal = true
            skip = 0
        case .satisfiable(let first, let last):
            let mapping = try RangeMapping(first: first, last: last, plaintextLength: size, layout: layout)
            status = 206
            contentLength = mapping.length
            contentRange = ByteRange.contentRange(first: first, last: last, size: size)
            backendRange = mapping.backendRange
            ciphertextLength = mapping.ciphertextLength
            firstChunkIndex = mapping.firstChunk
            lastChunkIsFinal = mapping.lastChunkIsFinal
            skip = mapping.skip
        }
    }
}

/// Decrypts the backend bytes of a `ReadPlan`: verifies every chunk, checks that exactly the
/// planned number of ciphertext bytes arrived (so a short or long backend answer is an error,
/// not silently different plaintext), and emits exactly the planned plaintext bytes.
public final class PlannedReader {
    public let plan: ReadPlan
    private let opener: ChunkOpener
    private var window: PlaintextWindow
    private var received = 0

    /// Unwraps the object's data key (and verifies its metadata) itself.
    public convenience init(plan: ReadPlan, encryptor: ObjectEncryptor, metadata: EncryptionMetadata, identity: ObjectIdentity) throws(EncryptionError) {
        try self.init(plan: plan, encryptor: encryptor, metadata: metadata, dataKey: encryptor.dataKey(of: metadata, identity: identity))
    }

    /// With the data key the caller already unwrapped with `ObjectEncryptor.dataKey(of:identity:)` for this
    /// `metadata` (one key-manager call per request).
    public init(plan: ReadPlan, encryptor: ObjectEncryptor, metadata: EncryptionMetadata, dataKey: DataKey) throws(EncryptionError) {
        guard plan.status != 416 else { throw EncryptionError(.invalidParameter, "an unsatisfiable range has no body to read") }
        self.plan = plan
        opener = try encryptor.opener(for: metadata, dataKey: dataKey, firstChunkIndex: plan.firstChunkIndex,
                                      maxCiphertextLength: plan.ciphertextLength)
        window = PlaintextWindow(skip: plan.skip, length: plan.contentLength)
    }

    public func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try feed(input, space: ChunkOpener.noSpace, emit: emit)
    }

    /// `update(_:emit:)` decrypting chunks straight into the caller's `space` (`ChunkOpener.update(_:space:emit:)`);
    /// an emitted slice then lies inside that space (`skip` bytes in for the first chunk of a range).
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try feed(input, space: space, emit: emit)
    }

    /// Hands over only chunks wholly inside the range wanted (a range's partial first and last chunks are opened
    /// here, to be cut).
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral?) throws {
        guard let deferring else { return try feed(input, space: space, emit: emit) }
        let chunkSize = opener.layout.chunkSize
        let windowed = ChunkDeferral(wants: { self.window.coversWhole(chunkSize) && deferring.wants() },
                                     take: { chunk in
                                         self.window.passWhole(chunkSize)
                                         try deferring.take(chunk)
                                     })
        try feed(input, space: space, emit: emit, deferring: windowed)
    }

    private func feed(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                      emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral? = nil) throws {
        received += input.count
        guard received <= plan.ciphertextLength else {
            throw EncryptionError(.trailingData, "the backend sent more than the \(plan.ciphertextLength) bytes planned")
        }
        try opener.update(input, space: space, emit: { chunk in
            let slice = window.slice(chunk)
            if !slice.isEmpty { try emit(slice) }
        }, deferring: deferring)
    }

    public func update(_ input: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try input.withUnsafeBytes { try update($0, emit: emit) }
    }

    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard received == plan.ciphertextLength else {
            throw EncryptionError(.truncated, "the backend sent \(received) of the \(plan.ciphertextLength) bytes planned")
        }
        try opener.finish(lastChunkIsFinal: plan.lastChunkIsFinal) { chunk in
            let slice = window.slice(chunk)
            if !slice.isEmpty { try emit(slice) }
        }
        guard window.isComplete else {
            throw EncryptionError(.internalFailure, "the plan's window was not filled; the layout and the stored size disagree")
        }
    }
}

/// A decryptor of one planned backend range — a single-part object's `PlannedReader`, a multipart object's
/// `MultipartRangeReader` — as the response relays and copy sources drive it.
public protocol RangeDecryptor: AnyObject {
    /// 200 or 206: the status of the answer to the client.
    var status: Int { get }
    var contentLength: Int { get }
    var contentRange: String? { get }
    /// The `Range` sent to the backend; nil fetches the whole object (which must then answer 200).
    var backendRange: String? { get }
    func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws
    /// `update(_:emit:)` that may decrypt straight into the caller's buffer: `space(n)` offers room for a chunk of
    /// `n` plaintext bytes; an emitted slice may lie in it (a relay then sends it without copying) or elsewhere.
    func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                emit: (UnsafeRawBufferPointer) throws -> Void) throws
    /// `update(_:space:emit:)` that may hand whole chunks inside the plaintext wanted to `deferring` instead of
    /// opening them (`ChunkOpener.update(_:space:emit:deferring:)`); nil opens every chunk here.
    func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral?) throws
    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws
}

extension RangeDecryptor {
    /// A reader that does not hand chunks over opens them all.
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral?) throws {
        try update(input, space: space, emit: emit)
    }

    /// A reader that cannot decrypt into the caller's buffer emits from its own.
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try update(input, emit: emit)
    }
}

extension PlannedReader: RangeDecryptor {
    public var status: Int { plan.status }
    public var contentLength: Int { plan.contentLength }
    public var contentRange: String? { plan.contentRange }
    public var backendRange: String? { plan.backendRange }
}

extension MultipartRangeReader: RangeDecryptor {
    public var status: Int { plan.status }
    public var contentLength: Int { plan.contentLength }
    public var contentRange: String? { plan.contentRange }
    public var backendRange: String? { plan.backendRange }
}
