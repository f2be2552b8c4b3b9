import Foundation
import Shared

/// Wraps a request body and checks, as the bytes stream through, what the client committed to:
/// the signed `x-amz-content-sha256`, an optional `Content-MD5` and the `Content-Length`.
///
/// The checks run on the read that reaches `Content-Length` (or the end of a body without one) and fail
/// by throwing from that read instead of returning its bytes. A consumer that forwards the body (the
/// backend upload) is therefore aborted before the last byte leaves, so a body that does not match its
/// signature is never stored, not even partly.
final class VerifyingBody: RequestBody {
    private let inner: RequestBody
    private let expectedSHA256: [UInt8]?
    private let expectedMD5: [UInt8]?
    private var sha256: Digest?
    private var md5: Digest?
    private var received: Int64 = 0
    private var ended = false

    var declaredLength: Int64? { inner.declaredLength }
    /// Bytes read so far.
    var bytesRead: Int64 { received }

    /// - Parameters:
    ///   - payload: the verified `x-amz-content-sha256` mode; only `.signedHash` is checked here.
    ///   - contentMD5: the `Content-MD5` header, if any.
    /// - Throws: `InvalidDigest` when `contentMD5` is not base64 of 16 bytes.
    init(_ inner: RequestBody, payload: PayloadMode, contentMD5: String?) throws(S3Error) {
        self.inner = inner
        if case .signedHash(let hash) = payload {
            expectedSHA256 = hash
            sha256 = Digest(.sha256)
        } else {
            expectedSHA256 = nil
        }
        if let contentMD5 {
            guard let data = Data(base64Encoded: contentMD5.trimmingCharacters(in: .whitespaces)), data.count == 16 else {
                throw S3Error.invalidDigest()
            }
            expectedMD5 = Array(data)
            md5 = Digest(.md5)
        } else {
            expectedMD5 = nil
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if ended { return 0 }
        let n = try inner.read(into: buffer)
        if n > 0 {
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            sha256?.update(chunk)
            md5?.update(chunk)
            received += Int64(n)
            if let declared = inner.declaredLength {
                guard received <= declared else { throw S3Error.incompleteBody() }
                // A consumer that knows the length (curl with a Content-Length) never asks past the last
                // byte, so the checks run before the last bytes are handed out: on a mismatch they are
                // withheld and the upload cannot complete.
                if received == declared { try finish() }
            }
            return n
        }
        if let declared = inner.declaredLength, received != declared { throw S3Error.incompleteBody() }
        try finish()
        return 0
    }

    private func finish() throws(S3Error) {
        ended = true
        if let expected = expectedSHA256, let digest = sha256.take() {
            guard ConstantTime.equals(digest.finalize(), expected) else { throw S3Error.contentSHA256Mismatch() }
        }
        if let expected = expectedMD5, let digest = md5.take() {
            guard ConstantTime.equals(digest.finalize(), expected) else { throw S3Error.badDigest() }
        }
    }
}
