import Foundation
import Shared
import Testing
@testable import Proxy

/// `BACKEND_UPLOAD_CHECKSUM=crc32` against moto, in process, in an object-lock bucket with a default retention:
/// moto, like AWS, refuses an upload there that carries neither a Content-MD5 nor a checksum, which is every
/// streamed upload (over 1 MiB) without the trailer.
@Suite(.serialized) final class BackendUploadChecksumTests {
    let moto: MotoServer
    let plain: HandlerHarness
    let checked: HandlerHarness
    let checkedEvents = RecordingEncryptionObserver()
    let raw: RawBackend
    static let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring("upload-checksum-tests"))
    static let mib = 1 << 20

    init() throws {
        moto = try MotoServer()
        plain = try HandlerHarness(backendEndpoint: moto.endpoint, encryptor: Self.encryptor, encryptionObserver: RecordingEncryptionObserver())
        checked = try HandlerHarness(backendEndpoint: moto.endpoint, encryptor: Self.encryptor, encryptionObserver: checkedEvents,
                                     uploadChecksums: true)
        raw = try RawBackend(endpoint: moto.endpoint)
        let created = raw.send("PUT", "/locked", headers: [(name: "x-amz-bucket-object-lock-enabled", value: "true")])
        precondition(created.status == 200, "create bucket: \(created.bodyText)")
        let rule = Array("""
            <ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
            <Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>
            """.utf8)
        let locked = raw.send("PUT", "/locked?object-lock", body: rule,
                              headers: [(name: "Content-MD5", value: Data(Digest.hash(.md5, rule)).base64EncodedString())])
        precondition(locked.status == 200, "object lock: \(locked.bodyText)")
    }

    static func content(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(count)
    }

    @Test func aStreamedUploadIntoALockedBucketNeedsTheChecksum() throws {
        let content = Self.content(3 * Self.mib + 5, seed: 1)
        let refused = plain.send("PUT", "/locked/without", body: content)
        #expect(refused.errorCode == "MissingUploadObjectWithObjectLockHeaders", "\(refused.bodyText)")
        #expect(raw.send("HEAD", "/locked/without").status == 404)

        let md5 = Digest.hash(.md5, content)
        let put = checked.send("PUT", "/locked/with", body: content,
                               headers: [(name: "Content-MD5", value: Data(md5).base64EncodedString())])
        #expect(put.status == 200, "\(put.bodyText)")
        #expect(checked.header(put, "ETag") == ClientETag.md5(md5))
        #expect(checked.header(put, "x-amz-checksum-crc32") == nil, "the backend's checksum describes ciphertext")
        let got = checked.send("GET", "/locked/with")
        #expect(got.status == 200 && got.body == content)
        // The backend holds the ciphertext, the framing removed.
        let stored = raw.send("GET", "/locked/with")
        #expect(stored.body.count == ChunkLayout.default.ciphertextLength(plaintextLength: content.count))
        // Without a Content-MD5 the plaintext MD5 would be recorded afterwards by a self-copy, which carries no body
        // and so no checksum: moto refuses it in this bucket. The upload stands, with an ETag that is visibly not an
        // MD5, and the refusal is logged.
        let streamed = checked.send("PUT", "/locked/no-md5", body: content)
        #expect(streamed.status == 200, "\(streamed.bodyText)")
        #expect(checked.header(streamed, "ETag")?.hasSuffix("-1\"") == true)
        #expect(checkedEvents.unrecorded.withLock { $0 }.contains { $0.hasPrefix("no-md5: self-copy answered 400") })
        #expect(checked.send("GET", "/locked/no-md5").body == content)
        // A small upload is buffered and carries the ciphertext's Content-MD5 either way.
        #expect(plain.send("PUT", "/locked/small", body: Self.content(1000, seed: 2)).status == 200)
    }

    /// An upload under its own retention: no self-copy is tried (its locked version would stay beside the copy);
    /// the object keeps one version and an ETag that is visibly not an MD5.
    @Test func anUploadUnderItsOwnRetentionIsNotCopied() throws {
        let content = Self.content(2 * Self.mib + 1, seed: 6)
        let put = checked.send("PUT", "/locked/retained", body: content, headers: [
            (name: "x-amz-object-lock-mode", value: "GOVERNANCE"),
            (name: "x-amz-object-lock-retain-until-date", value: "2099-01-01T00:00:00Z")])
        #expect(put.status == 200, "\(put.bodyText)")
        #expect(checked.header(put, "ETag")?.hasSuffix("-1\"") == true)
        let reasons = checkedEvents.unrecorded.withLock { $0 }.filter { $0.hasPrefix("retained:") }
        #expect(reasons == ["retained: the upload puts the object under object lock, whose version a self-copy could not replace"])
        let versions = raw.send("GET", "/locked?versions&prefix=retained").bodyText
        #expect(versions.components(separatedBy: "<Version>").count == 2, "\(versions)")
        #expect(checked.send("GET", "/locked/retained").body == content)
    }

    @Test func multipartUploadsDeclareTheAlgorithmAndCompleteWithThePartsChecksums() throws {
        let parts = [Self.content(5 * Self.mib, seed: 3), Self.content(5 * Self.mib, seed: 4), Self.content(1234, seed: 5)]
        // The last part is copied (UploadPartCopy: decrypted, resealed and streamed, with the trailer too).
        let source = checked.send("PUT", "/locked/part-source", body: parts[2])
        #expect(source.status == 200, "\(source.bodyText)")
        let created = checked.send("POST", "/locked/mp.bin?uploads")
        #expect(created.status == 200, "\(created.bodyText)")
        let uploadID = try #require(try XMLTree.parse(created.body).root.child("UploadId")?.text)
        let backendID = try #require(ObjectEncryptor.backendUploadID(of: uploadID))
        var listed = ""
        for (i, body) in parts.enumerated() {
            let target = "/locked/mp.bin?partNumber=\(i + 1)&uploadId=\(uploadID)"
            let answer = i < 2 ? checked.send("PUT", target, body: body)
                : checked.send("PUT", target, headers: [(name: "x-amz-copy-source", value: "/locked/part-source")])
            #expect(answer.status == 200, "\(answer.bodyText)")
            #expect(checked.header(answer, "x-amz-checksum-crc32") == nil)
            listed += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(checked.header(answer, "ETag") ?? "")</ETag></Part>"
        }
        // The backend's upload takes a CRC32 of every (ciphertext) part; the client never sees the backend's checksums.
        // (moto lists no part checksums, so the Complete document's are covered by MultipartDocumentsTests.)
        let uploads = raw.send("GET", "/locked?uploads").bodyText
        #expect(uploads.contains(backendID) && uploads.contains("<ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"), "\(uploads)")
        #expect(!checked.send("GET", "/locked/mp.bin?uploadId=\(uploadID)").bodyText.contains("Checksum"))
        let done = checked.send("POST", "/locked/mp.bin?uploadId=\(uploadID)",
                                body: Array("<CompleteMultipartUpload>\(listed)</CompleteMultipartUpload>".utf8))
        #expect(done.status == 200, "\(done.bodyText)")
        #expect(!done.bodyText.contains("Checksum"))
        let got = checked.send("GET", "/locked/mp.bin")
        #expect(got.status == 200 && got.body == parts.flatMap { $0 })
    }
}
