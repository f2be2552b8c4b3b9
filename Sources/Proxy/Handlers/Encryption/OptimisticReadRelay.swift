import Shared

/// Receives the backend's answer to the optimistic GET of an encrypted object (`OptimisticRead`) and lets
/// `decide` settle on its head what happens: decrypt into the client's response, answer from the head alone
/// (304, 416), relay the backend's error, or give this answer up so that the read is redone. A body that is
/// not needed is read and dropped when small, which keeps the backend connection reusable, and cut off when large.
final class OptimisticReadRelay: BackendResponseHandler {
    enum Outcome {
        /// The answer is decrypted into the client's response.
        case decrypting(DecryptingRelay)
        /// The backend's error answer goes to the client.
        case relayingError(ClientRelay)
        /// The client's answer was written from the head alone.
        case answered(BackendResult)
        /// This answer cannot serve the read: redo it, with what a HEAD would have said when the answer told
        /// (nil: start over with a HEAD).
        case redo(HTTPClientResponse?)
    }

    /// Largest unneeded body read to its end rather than cut off.
    static let discardLimit = 64 << 10

    /// Thrown to stop a transfer whose body is not needed (the outcome says what to do instead).
    struct Abandoned: Error {}

    let writer: ResponseWriter
    private let decide: (Int, [(name: String, value: String)]) throws -> Outcome
    private(set) var outcome: Outcome?
    private var discarded = 0

    init(writer: ResponseWriter, decide: @escaping (Int, [(name: String, value: String)]) throws -> Outcome) {
        self.writer = writer
        self.decide = decide
    }

    var clientResponseStarted: Bool {
        // The decrypting relay may write on a thread of its own; asking it stops that first.
        if case .decrypting(let relay)? = outcome { return relay.clientResponseStarted }
        return writer.headWritten
    }

    var status: Int {
        switch outcome {
        case .decrypting(let relay): relay.status
        case .relayingError(let relay): relay.status
        case .answered(let result): result.status
        case .redo, nil: 0
        }
    }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        let outcome = try decide(status, headers)
        self.outcome = outcome
        switch outcome {
        case .decrypting(let relay):
            // `decide` read the relay's metadata from these headers.
            try relay.responseHead(status: status, headers: headers, metadataChecked: true)
        case .relayingError(let relay):
            try relay.responseHead(status: status, headers: headers)
        case .answered, .redo:
            let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) }
            guard let length, length <= Self.discardLimit else { throw Abandoned() }
        }
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        switch outcome {
        case .decrypting(let relay):
            try relay.responseBody(bytes)
        case .relayingError(let relay):
            try relay.responseBody(bytes)
        case .answered, .redo, nil:
            discarded += bytes.count
            if discarded > Self.discardLimit { throw Abandoned() }
        }
    }

    /// What a HEAD of the object would have answered, from the head of a GET of (part of) it that showed the
    /// stored size: the same headers with the whole object's `Content-Length`.
    static func headEquivalent(_ headers: [(name: String, value: String)], storedLength: Int) -> HTTPClientResponse {
        var fields = headers.filter { !$0.name.caseInsensitiveEquals("content-length") && !$0.name.caseInsensitiveEquals("content-range") }
        fields.append((name: "Content-Length", value: String(storedLength)))
        return HTTPClientResponse(status: 200, headers: fields, body: [])
    }
}
