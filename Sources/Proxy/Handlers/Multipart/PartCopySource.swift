import Foundation
import Shared

/// The plaintext of a byte range of a stored object — plain, single-part or multipart — as a request body:
/// a backend GET of the covering bytes runs on its own thread, decrypts (verifying every chunk) and hands the
/// plaintext through a bounded `PlaintextPipe` to whoever reads this body (the UploadPartCopy's part upload).
/// A failure on either side stops the other; nothing unverified is ever read out.
final class PartCopySource: RequestBody, @unchecked Sendable {
    let declaredLength: Int64?
    private let pipe: PlaintextPipe
    private let done = DispatchSemaphore(value: 0)
    private var started = false
    private let outcome = FailureSlot()
    /// Why the source could not be read (a verification failure, the source changed, the backend failed), once
    /// the download ended; the body's reader has seen it as an `S3Error`.
    var failure: (any Error)? { outcome.error }

    /// - Parameters:
    ///   - request: the backend GET of the covering bytes (ranged, pinned to the source's ETag).
    ///   - length: plaintext bytes the range holds.
    ///   - makeReader: builds the decryptor on the download thread (nil: a plain source, passed through).
    init(length: Int, request: BackendRequest, backend: BackendClient, makeReader: (@Sendable () throws -> any RangeDecryptor)?) {
        declaredLength = Int64(length)
        pipe = PlaintextPipe(length: Int64(length))
        let pipe = self.pipe
        let done = self.done
        let job = CopyJob(request: request, backend: backend, makeReader: makeReader, length: length, slot: outcome)
        let thread = Thread {
            defer { done.signal() }
            var download: SourceDownload?
            do {
                let receiver = try SourceDownload(pipe: pipe, reader: job.makeReader?(), plainLength: job.length)
                download = receiver
                try job.backend.exchange(job.request, into: receiver)
                try receiver.finish()
                pipe.finish()
            } catch {
                // The decryptor's own error when it had one (the exchange reports it as a refusal).
                let cause = download?.encryptionFailure ?? Self.cause(error)
                job.slot.error = cause
                pipe.finish(error: Self.clientError(cause))
            }
        }
        thread.name = "part-copy-source"
        thread.stackSize = 4 << 20
        thread.start()
        started = true
    }

    /// The error inside the backend client's wrappers.
    static func cause(_ error: any Error) -> any Error {
        switch error {
        case BackendFailure.requestBody(let inner): return cause(inner)
        case BackendFailure.refused(let inner): return inner
        case HTTPClientError.handler(let inner): return cause(inner)
        default: return error
        }
    }

    /// What the client of the UploadPartCopy is told.
    static func clientError(_ error: any Error) -> S3Error {
        switch error {
        case let error as S3Error: return error
        case let error as EncryptionError:
            return S3Error.internalError().withLog("copy source failed verification: \(error.code.rawValue): \(error.message)")
        case BackendFailure.unavailable(let detail): return S3Error.serviceUnavailable().withLog(detail)
        case BackendFailure.aborted(let detail, _, _): return S3Error.internalError().withLog("reading the copy source: \(detail)")
        default: return S3Error.internalError().withLog("reading the copy source: \(error)")
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try pipe.read(into: buffer)
    }

    /// Stops the download (if still running) and waits for its thread.
    func close() {
        guard started else { return }
        started = false
        pipe.cancel()
        done.wait()
    }

    deinit {
        if started {
            pipe.cancel()
            done.wait()
        }
    }
}

/// Receives the source's bytes on the download thread.
private final class SourceDownload: BackendResponseHandler {
    let pipe: PlaintextPipe
    let reader: (any RangeDecryptor)?
    let plainLength: Int
    private(set) var status = 0
    private var received = 0
    /// The source's ciphertext failed verification.
    private(set) var encryptionFailure: EncryptionError?
    /// Nothing of this goes to a client directly.
    var clientResponseStarted: Bool { false }

    init(pipe: PlaintextPipe, reader: (any RangeDecryptor)?, plainLength: Int) throws {
        self.pipe = pipe
        self.reader = reader
        self.plainLength = plainLength
    }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        self.status = status
        if status == 412 { throw S3Error.objectChanged() }
        guard status == 200 || status == 206 else {
            throw S3Error.internalError().withLog("reading the copy source answered \(status)")
        }
        if reader == nil, headers.contains(where: { EncryptionMetadata.isReserved(headerName: $0.name) }) {
            // The plain source was replaced by an encrypted object in between: never copy ciphertext as plaintext.
            throw S3Error.objectChanged()
        }
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        if let reader {
            do {
                try reader.update(bytes) { try pipe.write($0) }
            } catch let error as EncryptionError {
                encryptionFailure = error
                throw error
            }
        } else {
            received += bytes.count
            guard received <= plainLength else { throw EncryptionError(.trailingData, "the copy source sent more than \(plainLength) bytes") }
            try pipe.write(bytes)
        }
    }

    func finish() throws {
        if let reader {
            do {
                try reader.finish { try pipe.write($0) }
            } catch let error as EncryptionError {
                encryptionFailure = error
                throw error
            }
        } else if received != plainLength {
            throw EncryptionError(.truncated, "the copy source sent \(received) of \(plainLength) bytes")
        }
    }
}

/// Written once by the download thread before it signals, read after waiting on it.
final class FailureSlot: @unchecked Sendable {
    var error: (any Error)?
}

/// What the download thread needs; handed over once, used only there afterwards.
private final class CopyJob: @unchecked Sendable {
    let request: BackendRequest
    let backend: BackendClient
    let makeReader: (@Sendable () throws -> any RangeDecryptor)?
    let length: Int
    let slot: FailureSlot

    init(request: BackendRequest, backend: BackendClient, makeReader: (@Sendable () throws -> any RangeDecryptor)?, length: Int,
         slot: FailureSlot) {
        self.request = request
        self.backend = backend
        self.makeReader = makeReader
        self.length = length
        self.slot = slot
    }
}
