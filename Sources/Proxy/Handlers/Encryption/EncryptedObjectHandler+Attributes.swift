import Foundation
import Shared

/// GetObjectAttributes, answered by the gateway from one HEAD of the object: the backend's own answer would
/// report the ciphertext's size, ETag and checksums. An encrypted object reports its plaintext size (a multipart
/// one from its part geometry, FORMAT.md §9.2), the ETag clients see, its recorded plaintext checksum and its
/// parts with their plaintext sizes; a plain object reports what the backend's HEAD says of it. Built on HEAD, not
/// on the backend's GetObjectAttributes, so it works with backends that lack the operation (Ceph RGW Pacific).
extension EncryptedObjectHandler {
    func getObjectAttributes(_ request: S3Request, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        let wanted = try ObjectAttributesRequest.parse(request.head.headers)
        // The client's headers as a HeadObject takes them. A plain object's checksum comes with the HEAD only when
        // asked for (an encrypted object's describes ciphertext and is not used).
        var headers = Self.metadataRequestHeaders(request.head.headers)
        headers.set("x-amz-checksum-mode", "ENABLED")
        let stored = try backend.fetch(BackendRequest(
            method: "HEAD", bucket: identity.bucket, key: identity.key, query: request.query.filter { $0.name == "versionId" },
            headers: headers, body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning), maxBodySize: 0)
        guard (200..<300).contains(stored.status) else {
            return try respondWithReadError(bucket: identity.bucket, key: identity.key, versionQuery: request.query.filter { $0.name == "versionId" },
                                            headers: Self.metadataRequestHeaders(request.head.headers), request: request, response: response)
        }
        guard let storedLength = stored.header("Content-Length").flatMap({ Int($0) }) else {
            throw S3Error.internalError().withLog("the backend's HEAD of \(identity.bucket)/\(identity.key) has no Content-Length")
        }
        let fingerprint = MetadataFingerprint(fields: stored.headers, identity: identity)
        let verified = encryptor.verifiedMetadata(fingerprint)
        let attributes: ObjectAttributes
        if let metadata = try verified?.metadata ?? readMetadata(stored.headers, identity, request) {
            // Unwrapping proves the metadata (its ETag and checksum records) authentic before they are reported.
            do {
                _ = try verified?.dataKey ?? encryptor.dataKey(of: metadata, identity: identity, remembering: fingerprint)
            } catch {
                throw failure(error, identity, request)
            }
            attributes = try encryptedAttributes(metadata, identity: identity, stored: stored, storedLength: storedLength,
                                                 wanted: wanted, request: request)
        } else {
            guard allowPlaintextReads else { throw S3Error.plaintextObjectRefused() }
            attributes = Self.plainAttributes(stored, storedLength: storedLength)
        }
        var fields: [(name: String, value: String)] = [("Content-Type", "application/xml")]
        for name in ["Last-Modified", "x-amz-version-id"] { if let value = stored.header(name) { fields.append((name, value)) } }
        return try respondBuffered(status: 200, headers: fields, body: attributes.document(for: wanted), request: request, response: response)
    }

    /// What an encrypted object reports: its geometry is read only when its size or parts are asked for.
    private func encryptedAttributes(_ metadata: EncryptionMetadata, identity: ObjectIdentity, stored: HTTPClientResponse,
                                     storedLength: Int, wanted: ObjectAttributesRequest, request: S3Request) throws -> ObjectAttributes {
        let checksum = metadata.checksum.flatMap { record in
            ChecksumAlgorithm(rawValue: record.algorithm).map {
                ObjectAttributes.Checksum(algorithm: $0, base64: ChecksumValue(algorithm: $0, bytes: record.value).base64, type: "FULL_OBJECT")
            }
        }
        var attributes = ObjectAttributes(etag: Self.unquoted(ClientETag.encrypted(metadata, backendETag: stored.header("ETag"))),
                                          size: 0, storageClass: Self.storageClass(stored), checksum: checksum, parts: nil)
        switch metadata.layout {
        case .single:
            guard wanted.attributes.contains(.objectSize) else { return attributes }
            do {
                attributes.size = try metadata.chunkLayout.plaintextLength(ciphertextLength: storedLength)
            } catch {
                throw failure(error, identity, request)
            }
        case .multipart:
            guard !wanted.attributes.isDisjoint(with: [.objectSize, .objectParts]) else { return attributes }
            let setup = try multipartSetup(identity, metadata: metadata, storedLength: storedLength, backendETag: stored.header("ETag") ?? "",
                                           versionQuery: request.query.filter { $0.name == "versionId" }, rangeHeader: nil,
                                           geometry: nil, access: ObjectAccessHeaders.object(request.head.headers), request: request)
            let geometry = setup.geometry
            attributes.size = geometry.plaintextLength
            attributes.parts = ObjectAttributes.Parts(count: geometry.count,
                                                      sizes: (0..<geometry.count).map { geometry.extent($0 + 1).plaintextLength })
        }
        return attributes
    }

    /// What a plain object reports: the backend's HEAD describes it as stored, which is as its clients wrote it.
    static func plainAttributes(_ stored: HTTPClientResponse, storedLength: Int) -> ObjectAttributes {
        var checksum: ObjectAttributes.Checksum?
        for (name, value) in stored.headers {
            if let algorithm = ChecksumAlgorithm(headerName: name) {
                checksum = ObjectAttributes.Checksum(algorithm: algorithm, base64: value, type: stored.header("x-amz-checksum-type"))
                break
            }
        }
        let etag = stored.header("ETag") ?? ""
        return ObjectAttributes(etag: unquoted(etag), size: storedLength, storageClass: storageClass(stored), checksum: checksum,
                                parts: ListingRewriter.partCount(etag).map { ObjectAttributes.Parts(count: $0, sizes: nil) })
    }

    /// S3 omits `x-amz-storage-class` for STANDARD objects.
    static func storageClass(_ stored: HTTPClientResponse) -> String {
        stored.header("x-amz-storage-class") ?? "STANDARD"
    }

    /// GetObjectAttributes writes the ETag without its quotes.
    static func unquoted(_ etag: String) -> String {
        var tag = Substring(etag)
        if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") { tag = tag.dropFirst().dropLast() }
        return String(tag)
    }
}
