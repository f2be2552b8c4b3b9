/// The three `aws-chunked` body encodings, named by the request's `x-amz-content-sha256`.
enum AWSChunkedMode: String, Sendable, CaseIterable {
    /// Every chunk carries a signature chained from the request's seed signature; no trailer.
    case signed = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    /// Signed chunks, then trailer fields signed by `x-amz-trailer-signature`.
    case signedWithTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    /// Plain chunks (no signatures), then unsigned trailer fields (a checksum protects the data).
    case unsignedWithTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    var chunksSigned: Bool { self != .unsignedWithTrailer }
    var allowsTrailer: Bool { self != .signed }
}

/// Bounds of one aws-chunked body. Nothing is buffered but one framing line and the trailer fields.
struct AWSChunkedLimits: Sendable, Equatable {
    /// Longest chunk header (`<hex>;chunk-signature=<64 hex>` plus CRLF is 101 bytes at most).
    var maxChunkHeaderBytes = 128
    /// Largest trailer section, field lines and CRLFs included.
    var maxTrailerBytes = 4096
    /// Most trailer fields (the signature included).
    var maxTrailerFields = 8
}

/// A framing error in an aws-chunked body. The message names what was wrong, never echoes bytes.
struct AWSChunkedError: Error, Sendable, Equatable, CustomStringConvertible {
    var message: String
    var description: String { "malformed aws-chunked body: \(message)" }
}

/// What one `feed` call produced.
enum AWSChunkedEvent: Sendable, Equatable {
    /// All input was consumed without completing anything.
    case needMore
    /// A chunk header: the chunk's data size and, in the signed modes, its signature (64 lower-case hex digits).
    /// A size of 0 is the final chunk; trailer fields and `.end` follow.
    case chunk(size: Int64, signature: String?)
    /// Chunk data at these offsets of the input just fed.
    case data(Range<Int>)
    /// The CRLF after a non-empty chunk's data: the chunk is complete.
    case chunkEnd
    /// One trailer field (name lower-cased, value trimmed), in arrival order.
    case trailer(name: String, value: String)
    /// The body is complete; `trailerSignature` is the `x-amz-trailer-signature` of the signed-trailer mode.
    case end(trailerSignature: String?)
}

/// An I/O-free decoder of S3's `aws-chunked` content encoding:
///
///     chunk   = hex-size [ ";chunk-signature=" 64HEXDIG ] CRLF data CRLF      (signature in the signed modes only)
///     final   = "0" [ ";chunk-signature=" 64HEXDIG ] CRLF
///     trailer = *( name ":" value CRLF ) CRLF                                  (fields only in the trailer modes)
///
/// Strict (no whitespace, no other chunk extensions, no bytes after the end) and bounded (one framing line and
/// the trailer section are all it buffers). Data bytes are never copied: they are reported as ranges of the input.
/// Signatures and checksums are the caller's: the decoder only frames.
struct AWSChunkedDecoder: Sendable {
    enum State: Sendable, Equatable {
        case chunkHeader
        case data(remaining: Int64)
        case dataCR
        case dataLF
        case trailer
        case done
        case failed
    }

    let mode: AWSChunkedMode
    let limits: AWSChunkedLimits
    private(set) var state: State = .chunkHeader
    private var line: [UInt8] = []
    private var trailerBytes = 0
    private var trailerFields = 0
    private var trailerSignature: String?

    init(mode: AWSChunkedMode, limits: AWSChunkedLimits = AWSChunkedLimits()) {
        self.mode = mode
        self.limits = limits
        line.reserveCapacity(limits.maxChunkHeaderBytes)
    }

    var isDone: Bool { state == .done }

    /// Bytes of chunk data still to come in the current chunk, when the decoder is inside one: a reader can read
    /// exactly that much straight into place (no framing in between to remove).
    var dataRemaining: Int64? {
        if case .data(let remaining) = state { return remaining }
        return nil
    }

    /// Consumes a prefix of `input` and reports what it completed. `.needMore` always consumes everything;
    /// `.data` consumes exactly its range. After `.end`, any further byte is an error.
    mutating func feed(_ input: UnsafeRawBufferPointer) throws(AWSChunkedError) -> (consumed: Int, event: AWSChunkedEvent) {
        do {
            return try step(input)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func step(_ input: UnsafeRawBufferPointer) throws(AWSChunkedError) -> (consumed: Int, event: AWSChunkedEvent) {
        var i = 0
        while i < input.count {
            switch state {
            case .failed:
                throw AWSChunkedError(message: "the decoder already failed")
            case .done:
                throw AWSChunkedError(message: "bytes after the end of the body")
            case .data(let remaining):
                let n = Int(min(Int64(input.count - i), remaining))
                let left = remaining - Int64(n)
                state = left == 0 ? .dataCR : .data(remaining: left)
                return (i + n, .data(i..<(i + n)))
            case .dataCR:
                guard input[i] == 13 else { throw AWSChunkedError(message: "chunk data is not followed by CRLF (the chunk is longer than its size)") }
                state = .dataLF
                i += 1
            case .dataLF:
                guard input[i] == 10 else { throw AWSChunkedError(message: "chunk data is not followed by CRLF") }
                state = .chunkHeader
                return (i + 1, .chunkEnd)
            case .chunkHeader, .trailer:
                let byte = input[i]
                i += 1
                if state == .trailer {
                    trailerBytes += 1
                    guard trailerBytes <= limits.maxTrailerBytes else {
                        throw AWSChunkedError(message: "trailer section longer than \(limits.maxTrailerBytes) bytes")
                    }
                } else if line.count + 1 > limits.maxChunkHeaderBytes {
                    throw AWSChunkedError(message: "chunk header longer than \(limits.maxChunkHeaderBytes) bytes")
                }
                if byte != 10 {
                    line.append(byte)
                    continue
                }
                guard line.last == 13 else { throw AWSChunkedError(message: "a line ends in LF without CR") }
                line.removeLast()
                defer { line.removeAll(keepingCapacity: true) }
                if state == .chunkHeader {
                    let (size, signature) = try parseChunkHeader(line)
                    state = size == 0 ? .trailer : .data(remaining: size)
                    return (i, .chunk(size: size, signature: signature))
                }
                if line.isEmpty {
                    if mode == .signedWithTrailer && trailerSignature == nil {
                        throw AWSChunkedError(message: "the trailer has no x-amz-trailer-signature")
                    }
                    state = .done
                    return (i, .end(trailerSignature: trailerSignature))
                }
                if let field = try parseTrailerField(line) { return (i, .trailer(name: field.name, value: field.value)) }
            }
        }
        return (input.count, .needMore)
    }

    /// `hex-size` then, in the signed modes, exactly `;chunk-signature=<64 lower-case hex>`.
    private func parseChunkHeader(_ line: [UInt8]) throws(AWSChunkedError) -> (Int64, String?) {
        let semicolon = line.firstIndex(of: UInt8(ascii: ";")) ?? line.count
        let hex = line[..<semicolon]
        guard !hex.isEmpty, hex.count <= 15 else { throw AWSChunkedError(message: "chunk size must be 1 to 15 hex digits") }
        var size: Int64 = 0
        for c in hex {
            guard let v = Self.hexValue(c) else { throw AWSChunkedError(message: "chunk size is not hexadecimal") }
            size = size << 4 | Int64(v)
        }
        let extensions = line[semicolon...]
        guard mode.chunksSigned else {
            guard extensions.isEmpty else { throw AWSChunkedError(message: "unexpected chunk extension in an unsigned body") }
            return (size, nil)
        }
        let prefix = Array(";chunk-signature=".utf8)
        guard extensions.count == prefix.count + 64, extensions.starts(with: prefix) else {
            throw AWSChunkedError(message: "chunk header must carry exactly one chunk-signature")
        }
        let signature = extensions.dropFirst(prefix.count)
        guard signature.allSatisfy(Self.isLowerHex) else {
            throw AWSChunkedError(message: "chunk-signature must be 64 lower-case hex digits")
        }
        return (size, String(decoding: signature, as: UTF8.self))
    }

    /// `name:value`; returns nil for the trailer signature, which is kept for `.end`.
    private mutating func parseTrailerField(_ line: [UInt8]) throws(AWSChunkedError) -> (name: String, value: String)? {
        guard mode.allowsTrailer else { throw AWSChunkedError(message: "trailer fields in a body without a trailer") }
        trailerFields += 1
        guard trailerFields <= limits.maxTrailerFields else {
            throw AWSChunkedError(message: "more than \(limits.maxTrailerFields) trailer fields")
        }
        guard trailerSignature == nil else { throw AWSChunkedError(message: "x-amz-trailer-signature must be the last trailer field") }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
            throw AWSChunkedError(message: "trailer field is not name:value")
        }
        let nameBytes = line[..<colon]
        guard nameBytes.allSatisfy(Self.isTokenChar) else { throw AWSChunkedError(message: "invalid trailer field name") }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
        while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
        guard value.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { throw AWSChunkedError(message: "invalid trailer field value") }
        let name = String(decoding: nameBytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
        let text = String(decoding: value, as: UTF8.self)
        if name == "x-amz-trailer-signature" {
            guard mode == .signedWithTrailer else {
                throw AWSChunkedError(message: "x-amz-trailer-signature in a body whose trailer is unsigned")
            }
            guard value.count == 64, value.allSatisfy(Self.isLowerHex) else {
                throw AWSChunkedError(message: "x-amz-trailer-signature must be 64 lower-case hex digits")
            }
            trailerSignature = text
            return nil
        }
        return (name, text)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }

    /// RFC 9110 token characters.
    private static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
