import Foundation
import Shared

/// Flexible checksums recorded with encrypted objects (issue 8): a PutObject's verified `x-amz-checksum-*` is kept
/// in the object's authenticated metadata, so that GetObject/HeadObject with `x-amz-checksum-mode: ENABLED` can
/// return it for whole-object reads and the SDKs' response validation passes (the backend's own checksums describe
/// the ciphertext and are never shown).
extension EncryptedObjectHandler {
    /// The record of a verified checksum.
    static func checksumRecord(_ value: ChecksumValue?) throws -> ChecksumRecord? {
        guard let value else { return nil }
        return try ChecksumRecord(algorithm: value.algorithm.rawValue, value: value.bytes)
    }
}

/// Adds an object's recorded checksum to a successful whole-object answer (no Range) when the client asked for it
/// with `x-amz-checksum-mode: ENABLED`, as S3 does (`x-amz-checksum-<alg>` and `x-amz-checksum-type: FULL_OBJECT`).
final class ChecksumModeResponse: ResponseWriter {
    private let inner: ResponseWriter
    private let header: (name: String, value: String)

    /// `inner` itself unless the request asks for the checksum of a whole object that has one.
    static func wrap(_ inner: ResponseWriter, checksum: ChecksumRecord?, request headers: HTTPFields) -> ResponseWriter {
        guard headers["x-amz-checksum-mode"]?.trimmingCharacters(in: .whitespaces).caseInsensitiveEquals("ENABLED") == true,
              headers["Range"] == nil, let checksum, let algorithm = ChecksumAlgorithm(rawValue: checksum.algorithm) else { return inner }
        return ChecksumModeResponse(inner, header: (algorithm.headerName, Data(checksum.value).base64EncodedString()))
    }

    private init(_ inner: ResponseWriter, header: (name: String, value: String)) {
        self.inner = inner
        self.header = header
    }

    var headWritten: Bool { inner.headWritten }

    func writeHead(_ head: HTTPResponseHead) throws {
        var head = head
        if head.status == 200 {
            head.headers.set(header.name, header.value)
            head.headers.set("x-amz-checksum-type", "FULL_OBJECT")
        }
        try inner.writeHead(head)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try inner.write(bytes) }

    func finish() throws { try inner.finish() }
}
