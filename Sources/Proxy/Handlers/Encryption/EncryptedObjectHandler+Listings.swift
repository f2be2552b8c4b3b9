import Foundation
import Shared
import Synchronization

/// ListObjects, ListObjectsV2, ListObjectVersions: the backend's document with plaintext sizes and ETags
/// that do not pass for plaintext MD5s (`ListingRewriter`). A single-part entry's size follows from its stored
/// size alone. A multipart entry's does not when its parts are not chunk multiples (nothing in a listing
/// tells those apart), so the gateway reads its part headers: two 36-byte ranged GETs for the usual
/// uniform part sizes (`MultipartLocator`), for all multipart entries of a page concurrently, and remembered
/// per process in the geometry cache GET/HEAD share (`MultipartGeometryCache`, keyed by the backend's ETag and size, so a
/// replaced object is re-read).
extension EncryptedObjectHandler {
    /// Concurrent part-header reads per listing page.
    static let listingReadConcurrency = 8

    func listObjects(_ request: S3Request, response: ResponseWriter) throws -> BackendResult {
        // The document is rewritten, so it must arrive uncompressed.
        var headers = request.head.headers
        headers.remove("Accept-Encoding")
        let answer = try backend.fetch(BackendRequest(method: request.head.method, bucket: request.address.bucket, key: nil,
                                                      query: request.query, headers: headers, signing: request.identity.backendSigning), maxBodySize: Self.maxDocumentSize)
        var document = answer.body
        if answer.status == 200, let bucket = request.address.bucket {
            let sizes = multipartSizes(ListingRewriter.multipartEntries(answer.body), bucket: bucket,
                                       signing: request.identity.backendSigning)
            document = ListingRewriter.rewrite(answer.body, multipartSizes: sizes)
        }
        return try respondBuffered(status: answer.status, headers: answer.headers, body: document, request: request, response: response)
    }

    /// Plaintext sizes of multipart entries from their part headers; entries that are not gateway multipart
    /// objects (no part header at offset 0: plain) or whose headers cannot be read are left out.
    func multipartSizes(_ entries: [ListingRewriter.MultipartEntry], bucket: String,
                        signing: BackendSigning) -> [ListingRewriter.MultipartEntry: Int] {
        var known: [ListingRewriter.MultipartEntry: Int] = [:]
        var missing: [ListingRewriter.MultipartEntry] = []
        for entry in entries {
            switch multipartGeometries.lookup(Self.geometryKey(bucket: bucket, entry)) {
            // Whatever chunk size a GET learned it under, the geometry's plaintext size is the object's.
            case .geometry(let geometry)?: known[entry] = geometry.plaintextLength
            case .plain?: break
            case .unreadable?: if let estimate = Self.alignedMultipartSize(entry) { known[entry] = estimate }
            case nil: missing.append(entry)
            }
        }
        guard !missing.isEmpty else { return known }
        let pending = missing
        let results = Mutex<[ListingRewriter.MultipartEntry: MultipartGeometryCache.Value]>([:])
        let next = Atomic<Int>(0)
        let workers = min(Self.listingReadConcurrency, pending.count)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < pending.count else { return }
                let entry = pending[index]
                if let value = readMultipartSize(bucket: bucket, entry, signing: signing) {
                    results.withLock { $0[entry] = value }
                }
            }
        }
        let learned = results.withLock { $0 }
        for entry in pending {
            guard let value = learned[entry] else {
                // The reads failed (backend error, a concurrent overwrite): the formula that is exact for chunk-aligned
                // parts, never a failed listing; not remembered, so the next listing tries again.
                if let estimate = Self.alignedMultipartSize(entry) { known[entry] = estimate }
                observer.listingSizeEstimated(bucket: bucket, key: entry.key, reason: "its part headers could not be read")
                continue
            }
            multipartGeometries.store(Self.geometryKey(bucket: bucket, entry), value)
            switch value {
            case .geometry(let geometry):
                known[entry] = geometry.plaintextLength
            case .unreadable:
                // Logged once: later listings take the estimate from the cache.
                if let estimate = Self.alignedMultipartSize(entry) { known[entry] = estimate }
                observer.listingSizeEstimated(bucket: bucket, key: entry.key,
                                              reason: "the backend reads its part headers only with the object's SSE-C key")
            case .plain:
                break
            }
        }
        return known
    }

    /// `Pinv(L − 36·N)` (FORMAT.md §9.4): the plaintext size of a multipart object whose parts but the last are
    /// multiples of the (default) chunk size.
    static func alignedMultipartSize(_ entry: ListingRewriter.MultipartEntry) -> Int? {
        let segments = entry.storedSize - PartHeader.size * entry.partCount
        guard segments > 0 else { return nil }
        return ChunkLayout.listingPlaintextSize(ciphertextLength: segments)
    }

    static func geometryKey(bucket: String, _ entry: ListingRewriter.MultipartEntry) -> MultipartGeometryCache.Key {
        MultipartGeometryCache.Key(bucket: bucket, key: entry.key, backendETag: entry.backendETag, storedLength: entry.storedSize)
    }

    /// Runs `MultipartLocator` against the backend for one entry. Nil when the reads failed (not cached).
    private func readMultipartSize(bucket: String, _ entry: ListingRewriter.MultipartEntry,
                                   signing: BackendSigning) -> MultipartGeometryCache.Value? {
        var locator = MultipartLocator(storedLength: entry.storedSize, chunkLayout: .default, partCountHint: entry.partCount)
        var step = locator.start()
        let query = entry.versionID.map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? []
        while true {
            switch step {
            case .done(let geometry):
                return .geometry(geometry)
            case .readHeader(let offset):
                var headers = HTTPFields()
                headers.set("Range", "bytes=\(offset)-\(offset + PartHeader.size - 1)")
                headers.set("If-Match", entry.backendETag)
                guard let answer = try? backend.fetch(BackendRequest(method: "GET", bucket: bucket, key: entry.key, query: query,
                                                                     headers: headers, signing: signing), maxBodySize: 4096) else { return nil }
                // A refusal of this very read (an SSE-C object, without its key) is final for this stored object;
                // other failures (a concurrent overwrite, a busy backend) are tried again by the next listing.
                if answer.status == 400 { return .unreadable }
                guard answer.status == 206 || answer.status == 200 else { return nil }
                if answer.header("x-amz-meta-s3eg-version") == nil {
                    return .plain
                }
                do {
                    step = try locator.received(Array(answer.body.prefix(PartHeader.size)), at: offset)
                } catch {
                    return .plain
                }
            }
        }
    }
}
