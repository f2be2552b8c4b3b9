import Foundation
import Shared
import Synchronization
import Testing
@testable import Proxy

/// A key provider that counts its calls: with `KEY_CACHE_TTL=0` every `unwrap` is a key-manager round trip.
final class CountingKeys: DataKeyWrapping {
    let inner: KeyRing
    let counts = Mutex<(wraps: Int, unwraps: Int)>((0, 0))

    init(_ inner: KeyRing) { self.inner = inner }

    func wrap(_ dataKey: DataKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey {
        counts.withLock { $0.wraps += 1 }
        return try inner.wrap(dataKey, context: context)
    }

    func unwrap(_ wrapped: WrappedDataKey, context: WrapContext) throws(EncryptionError) -> DataKey {
        counts.withLock { $0.unwraps += 1 }
        return try inner.unwrap(wrapped, context: context)
    }

    func v1Key(id: [UInt8]) -> KeyEncryptionKey? { inner.v1Key(id: id) }
    func isActive(_ reference: KeyReference) -> Bool { inner.isActive(reference) }

    /// The calls `body` made.
    func calls(_ body: () throws -> Void) rethrows -> (wraps: Int, unwraps: Int) {
        let before = counts.withLock { $0 }
        try body()
        let after = counts.withLock { $0 }
        return (after.wraps - before.wraps, after.unwraps - before.unwraps)
    }
}

/// Key-provider calls per request kind against moto: one unwrap per stored object a request reads (the data
/// key proves the metadata before a condition or a HEAD answer, and then opens the body), one wrap per object
/// (or upload) it creates. Without a key cache each call is a request to the key manager.
@Suite(.serialized) final class KeyManagerCallsTests {
    let moto: MotoServer
    let gateway: HandlerHarness
    let keys = CountingKeys(EncryptionFixtures.ring("key-manager-calls"))
    static let mib = 1 << 20

    init() throws {
        moto = try MotoServer()
        gateway = try HandlerHarness(backendEndpoint: moto.endpoint, encryptor: ObjectEncryptor(keys: keys),
                                     encryptionObserver: RecordingEncryptionObserver())
        let raw = try RawBackend(endpoint: moto.endpoint)
        let created = raw.send("PUT", "/bucket")
        precondition(created.status == 200, "create bucket: \(created.status ?? 0) \(created.bodyText)")
    }

    static func content(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(count)
    }

    /// Sends one request, expects `status`, and returns the key-provider calls it made.
    func calls(_ method: String, _ target: String, body: [UInt8] = [], headers: [(name: String, value: String)] = [],
               status: Int = 200) -> (wraps: Int, unwraps: Int, answer: RecordingWriter) {
        var answer = RecordingWriter()
        let counted = keys.calls { answer = gateway.send(method, target, body: body, headers: headers) }
        #expect(answer.status == status, "\(method) \(target): \(answer.bodyText)")
        return (counted.wraps, counted.unwraps, answer)
    }

    static func element(_ writer: RecordingWriter, _ name: String) -> String? {
        guard let tree = try? XMLTree.parse(writer.body) else { return nil }
        func find(_ e: XMLTree.Element) -> String? {
            if e.name == name { return e.text }
            return e.children.lazy.compactMap(find).first
        }
        return find(tree.root)
    }

    @Test func everyRequestUnwrapsEachObjectItReadsOnce() throws {
        let small = Self.content(100_000, seed: 1)
        let large = Self.content(2 * Self.mib + 3, seed: 2)
        // Writes: one wrap; a streamed body's late records (MD5 and a computed checksum) cost one unwrap together.
        let putSmall = calls("PUT", "/bucket/small", body: small)
        #expect((putSmall.wraps, putSmall.unwraps) == (1, 0))
        let putLarge = calls("PUT", "/bucket/large", body: large, headers: [(name: "x-amz-sdk-checksum-algorithm", value: "CRC32")])
        #expect((putLarge.wraps, putLarge.unwraps) == (1, 1), "streamed PUT with late ETag and checksum records")
        let etag = try #require(putSmall.answer.head?.headers["ETag"])

        // Reads of a single-part object: whole (one round trip), ranged, conditional, HEAD.
        let reads: [(String, String, [(name: String, value: String)], Int)] = [
            ("GET", "/bucket/small", [], 200),
            ("GET", "/bucket/large", [], 200),
            ("GET", "/bucket/large", [(name: "Range", value: "bytes=70000-1500000")], 206),
            ("GET", "/bucket/large", [(name: "Range", value: "bytes=-10")], 206),
            ("GET", "/bucket/small", [(name: "If-None-Match", value: etag)], 304),
            ("GET", "/bucket/small", [(name: "If-Match", value: etag)], 200),
            ("GET", "/bucket/small", [(name: "Range", value: "bytes=200000-")], 416),
            ("HEAD", "/bucket/small", [], 200),
            ("HEAD", "/bucket/large", [(name: "Range", value: "bytes=5-9")], 206),
        ]
        for (method, target, headers, status) in reads {
            let read = calls(method, target, headers: headers, status: status)
            #expect((read.wraps, read.unwraps) == (0, 1), "\(method) \(target) \(headers)")
        }
        #expect(calls("GET", "/bucket/large").answer.body == large)

        // A multipart object: creating the upload wraps its key, each part opens the upload id (unwrap), completing
        // needs no key (the backend's upload id is read unverified).
        let created = calls("POST", "/bucket/multi?uploads")
        #expect((created.wraps, created.unwraps) == (1, 0))
        let uploadID = try #require(Self.element(created.answer, "UploadId"))
        let part = calls("PUT", "/bucket/multi?partNumber=1&uploadId=\(uploadID)", body: small)
        #expect((part.wraps, part.unwraps) == (0, 1))
        let partETag = try #require(part.answer.head?.headers["ETag"])
        let xml = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\(partETag)</ETag></Part></CompleteMultipartUpload>"
        let completed = calls("POST", "/bucket/multi?uploadId=\(uploadID)", body: Array(xml.utf8))
        #expect((completed.wraps, completed.unwraps) == (0, 0))
        for (method, headers, status) in [("GET", [(name: String, value: String)](), 200), ("GET", [(name: "Range", value: "bytes=10-20")], 206),
                                          ("HEAD", [], 200)] {
            let read = calls(method, "/bucket/multi", headers: headers, status: status)
            #expect((read.wraps, read.unwraps) == (0, 1), "\(method) multipart \(headers)")
        }

        // CopyObject: the source's key unwrapped once and wrapped for the destination.
        let copy = calls("PUT", "/bucket/copy", headers: [(name: "x-amz-copy-source", value: "/bucket/small")])
        #expect((copy.wraps, copy.unwraps) == (1, 1))
        // UploadPartCopy: the source's key once (whatever its layout) and the destination upload's key once.
        let target = calls("POST", "/bucket/assembled?uploads")
        let targetID = try #require(Self.element(target.answer, "UploadId"))
        for (number, source) in [(1, "/bucket/large"), (2, "/bucket/multi")] {
            let copied = calls("PUT", "/bucket/assembled?partNumber=\(number)&uploadId=\(targetID)",
                               headers: [(name: "x-amz-copy-source", value: source), (name: "x-amz-copy-source-range", value: "bytes=0-99")])
            #expect((copied.wraps, copied.unwraps) == (0, 2), "UploadPartCopy from \(source)")
        }
    }
}
