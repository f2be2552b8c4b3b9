import Foundation
import Shared
import Synchronization
import Testing
@testable import Proxy

final class RecordingEncryptionObserver: EncryptionObserver {
    let tampers = Mutex<[EncryptionError]>([])
    let work = Mutex<[String]>([])
    func encryptionWork(operation: String, duration: Duration) { work.withLock { $0.append(operation) } }
    func tamperDetected(bucket: String, key: String, requestID: String, error: EncryptionError) {
        tampers.withLock { $0.append(error) }
    }
    var tamperCount: Int { tampers.withLock { $0.count } }
}

extension HandlerHarness {
    /// A harness whose handler encrypts (the default `init` is a pass-through gateway).
    init(backendEndpoint: String, encryptor: ObjectEncryptor, encryptionObserver: any EncryptionObserver,
         allowPlaintextReads: Bool = true) throws {
        backend = try BackendClient(configuration: BackendConfiguration(endpoint: backendEndpoint, accessKey: "testing", secretKey: "testing"),
                                    http: HTTPClient())
        handler = S3RequestHandler(gateway: gateway,
                                   authenticator: RequestAuthenticator(credentials: StaticCredentials(accessKey: Self.clientKey, secretKey: Self.clientSecret), regions: ["us-east-1", "us-west-2"]),
                                   backend: backend, observer: observer, baseDomains: ["s3.gateway.test"],
                                   encryptor: encryptor, encryptionObserver: encryptionObserver,
                                   allowPlaintextReads: allowPlaintextReads)
    }
}

/// The encrypting object handlers against moto: `gateway` encrypts, `raw` talks to the backend directly and
/// shows (and lets the tests rewrite) what is really stored.
@Suite(.serialized, .enabled(if: MotoServer.available)) final class EncryptedObjectHandlerMotoTests {
    let moto: MotoServer
    let gateway: HandlerHarness
    let raw: RawBackend
    let events = RecordingEncryptionObserver()
    static let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring("handler-tests"))

    init() throws {
        moto = try MotoServer()
        gateway = try HandlerHarness(backendEndpoint: moto.endpoint, encryptor: Self.encryptor, encryptionObserver: events)
        raw = try RawBackend(endpoint: moto.endpoint)
        for bucket in ["/bucket", "/other"] {
            let created = raw.send("PUT", bucket)
            precondition(created.status == 200, "create bucket: \(created.status ?? 0) \(created.bodyText)")
        }
    }

    static func content(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(count)
    }

    @Test(arguments: [0, 1, 65535, 65536, 65537, (1 << 20) + 5, 3 * 65536 + 7])
    func roundTripStoresOnlyCiphertext(size: Int) throws {
        let content = Self.content(size, seed: UInt64(size))
        let key = "/bucket/rt-\(size)"
        let put = gateway.send("PUT", key, body: content, headers: [(name: "Content-Type", value: "application/x-test"),
                                                                     (name: "x-amz-meta-color", value: "blue")])
        #expect(put.status == 200, "\(put.bodyText)")
        let get = gateway.send("GET", key)
        #expect(get.status == 200)
        #expect(get.body == content)
        #expect(get.head?.contentLength == Int64(size))
        #expect(gateway.header(get, "Content-Type") == "application/x-test")
        #expect(gateway.header(get, "x-amz-meta-color") == "blue")
        #expect(get.head?.headers.contains { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") } == false)
        // Small bodies are buffered, so their ETag is the plaintext MD5; PUT and GET agree either way.
        if size <= EncryptedObjectHandler.bufferedUploadLimit {
            #expect(gateway.header(put, "ETag") == "\"\(Encoding.hex(Digest.hash(.md5, content)))\"")
        }
        #expect(gateway.header(get, "ETag") == gateway.header(put, "ETag"))

        let head = gateway.send("HEAD", key)
        #expect(head.status == 200)
        #expect(head.head?.contentLength == Int64(size))
        #expect(gateway.header(head, "ETag") == gateway.header(put, "ETag"))

        let stored = raw.send("GET", key)
        #expect(stored.status == 200)
        #expect(stored.body.count == ChunkLayout.default.ciphertextLength(plaintextLength: size))
        #expect(raw.header(stored, "x-amz-meta-s3eg-version") == "2")
        if size >= 16 {
            // No 16-byte window of the plaintext appears in what the backend holds.
            let probe = Array(content[(size / 2 - 8)..<(size / 2 + 8)])
            #expect(!(0...(stored.body.count - 16)).contains { stored.body[$0..<($0 + 16)].elementsEqual(probe) })
        }
        #expect(events.work.withLock { $0.contains("PutObject") && $0.contains("GetObject") })
    }

    @Test func rangesMatchThePlaintext() throws {
        var rng = SplitMix64(seed: 0x5eed)
        for size in [1, 100, 65536, 200_003] {
            let content = Self.content(size, seed: UInt64(size) &+ 99)
            let key = "/bucket/range-\(size)"
            #expect(gateway.send("PUT", key, body: content).status == 200)
            for _ in 0..<12 {
                let a = Int.random(in: 0..<(size + 10), using: &rng)
                let b = Int.random(in: 0..<(size + 10), using: &rng)
                let n = Int.random(in: 0...(size + 10), using: &rng)
                let header: String
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: header = "bytes=\(min(a, b))-\(max(a, b))"
                case 1: header = "bytes=\(a)-"
                default: header = "bytes=-\(n)"
                }
                let got = gateway.send("GET", key, headers: [(name: "Range", value: header)])
                let expected = ByteRange.parse(header)!.resolve(size: size)
                switch expected {
                case .satisfiable(let first, let last):
                    #expect(got.status == 206, "\(header) on \(size)")
                    #expect(got.body == Array(content[first...last]), "\(header) on \(size)")
                    #expect(gateway.header(got, "Content-Range") == "bytes \(first)-\(last)/\(size)")
                case .unsatisfiable:
                    #expect(got.status == 416, "\(header) on \(size)")
                    #expect(got.errorCode == "InvalidRange")
                    #expect(gateway.header(got, "Content-Range") == "bytes */\(size)")
                }
            }
        }
    }

    @Test func tamperedCiphertextNeverYieldsWrongBytes() throws {
        let content = Self.content(3 * 65536 + 100, seed: 7)
        #expect(gateway.send("PUT", "/bucket/victim", body: content).status == 200)
        let stored = raw.send("GET", "/bucket/victim")
        let metadata = stored.head!.headers.filter { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") }

        func rewrite(_ body: [UInt8], key: String = "/bucket/victim", meta: [(name: String, value: String)]? = nil) {
            #expect(raw.send("PUT", key, body: body, headers: meta ?? metadata).status == 200)
        }
        func expectFailure(_ label: String, key: String = "/bucket/victim") {
            let before = events.tamperCount
            let got = gateway.send("GET", key)
            #expect(got.body != content, "\(label): wrong bytes must never be returned whole")
            #expect(got.abortedWith != nil || (got.status ?? 0) >= 500, "\(label)")
            #expect(events.tamperCount == before + 1, "\(label) is counted as tampering")
        }

        var flipped = stored.body
        flipped[70_000] ^= 0x01
        rewrite(flipped)
        expectFailure("flipped byte")

        rewrite(Array(stored.body[0..<(2 * 65552)]))
        expectFailure("truncated at a chunk boundary")

        var swapped = stored.body
        swapped.replaceSubrange(0..<65552, with: stored.body[65552..<(2 * 65552)])
        swapped.replaceSubrange(65552..<(2 * 65552), with: stored.body[0..<65552])
        rewrite(swapped)
        expectFailure("swapped chunks")
        // The first chunk fails, so nothing was sent yet: a complete 500 rather than a cut connection.
        let early = gateway.send("GET", "/bucket/victim")
        #expect(early.status == 500)
        #expect(early.errorCode == "InternalError")
        #expect(early.abortedWith == nil)

        // Another object's body under this object's metadata.
        #expect(gateway.send("PUT", "/bucket/other-victim", body: content).status == 200)
        rewrite(raw.send("GET", "/bucket/other-victim").body)
        expectFailure("swapped bodies")

        // This object's body and metadata under another name: the key binding fails the unwrap (before the head).
        rewrite(stored.body, key: "/bucket/moved")
        let moved = gateway.send("GET", "/bucket/moved")
        #expect(moved.status == 500)
        #expect(moved.errorCode == "InternalError")
    }

    @Test func reservedAndOversizedMetadataAreRefused() {
        let reserved = gateway.send("PUT", "/bucket/r", body: [1], headers: [(name: "x-amz-meta-s3eg-version", value: "1")])
        #expect(reserved.status == 400)
        #expect(reserved.errorCode == "InvalidArgument")
        let big = String(repeating: "v", count: 1900)
        let oversized = gateway.send("PUT", "/bucket/r", body: [1], headers: [(name: "x-amz-meta-big", value: big)])
        #expect(oversized.status == 400)
        #expect(oversized.errorCode == "MetadataTooLarge")
        #expect(raw.send("HEAD", "/bucket/r").status == 404)
        let fits = gateway.send("PUT", "/bucket/r", body: [1], headers: [(name: "x-amz-meta-big", value: String(repeating: "v", count: 1500))])
        #expect(fits.status == 200)
    }

    @Test func wrongContentMD5OnAStreamedBodyStoresNothing() {
        let content = Self.content((1 << 20) + 100, seed: 3)
        let wrong = Data(Digest.hash(.md5, Array("other".utf8))).base64EncodedString()
        let bad = gateway.send("PUT", "/bucket/md5", body: content, headers: [(name: "Content-MD5", value: wrong)], payload: .unsigned)
        #expect(bad.status == 400)
        #expect(bad.errorCode == "BadDigest")
        #expect(raw.send("HEAD", "/bucket/md5").status == 404)
        let right = Data(Digest.hash(.md5, content)).base64EncodedString()
        let good = gateway.send("PUT", "/bucket/md5", body: content, headers: [(name: "Content-MD5", value: right)], payload: .unsigned)
        #expect(good.status == 200)
        let etag = "\"\(Encoding.hex(Digest.hash(.md5, content)))\""
        #expect(gateway.header(good, "ETag") == etag)
        #expect(gateway.header(gateway.send("HEAD", "/bucket/md5"), "ETag") == etag)
    }

    @Test func copyRewrapsForTheDestination() throws {
        let content = Self.content(100_000, seed: 11)
        #expect(gateway.send("PUT", "/bucket/src", body: content, headers: [(name: "x-amz-meta-color", value: "red"),
                                                                              (name: "Content-Type", value: "text/x-src")]).status == 200)
        let copied = gateway.send("PUT", "/other/dst", headers: [(name: "x-amz-copy-source", value: "/bucket/src")])
        #expect(copied.status == 200, "\(copied.bodyText)")
        #expect(copied.bodyText.contains(Encoding.hex(Digest.hash(.md5, content))))
        let get = gateway.send("GET", "/other/dst")
        #expect(get.body == content)
        #expect(gateway.header(get, "x-amz-meta-color") == "red")
        #expect(gateway.header(get, "Content-Type") == "text/x-src")
        // Same ciphertext, different wrap.
        #expect(raw.send("GET", "/other/dst").body == raw.send("GET", "/bucket/src").body)
        #expect(raw.header(raw.send("HEAD", "/other/dst"), "x-amz-meta-s3eg-wrapped-key")
                != raw.header(raw.send("HEAD", "/bucket/src"), "x-amz-meta-s3eg-wrapped-key"))

        let replaced = gateway.send("PUT", "/bucket/src-copy", headers: [
            (name: "x-amz-copy-source", value: "bucket/src"), (name: "x-amz-metadata-directive", value: "REPLACE"),
            (name: "x-amz-meta-shape", value: "round"), (name: "Content-Type", value: "text/x-new")])
        #expect(replaced.status == 200, "\(replaced.bodyText)")
        let replacedGet = gateway.send("GET", "/bucket/src-copy")
        #expect(replacedGet.body == content)
        #expect(gateway.header(replacedGet, "x-amz-meta-shape") == "round")
        #expect(gateway.header(replacedGet, "x-amz-meta-color") == nil)
        #expect(gateway.header(replacedGet, "Content-Type") == "text/x-new")

        // Copy onto itself re-wraps in place.
        let before = raw.header(raw.send("HEAD", "/bucket/src"), "x-amz-meta-s3eg-wrapped-key")
        #expect(gateway.send("PUT", "/bucket/src", headers: [(name: "x-amz-copy-source", value: "/bucket/src")]).status == 200)
        #expect(raw.header(raw.send("HEAD", "/bucket/src"), "x-amz-meta-s3eg-wrapped-key") != before)
        #expect(gateway.send("GET", "/bucket/src").body == content)

        let failed = gateway.send("PUT", "/bucket/nope", headers: [(name: "x-amz-copy-source", value: "/bucket/src"),
                                                                   (name: "x-amz-copy-source-if-match", value: "\"0123\"")])
        #expect(failed.status == 412)
    }

    @Test func listingsShowPlaintextSizes() {
        let sizes = [0, 5, 65536, 65537, 300_000]
        for size in sizes { #expect(gateway.send("PUT", "/bucket/list/\(size)", body: Self.content(size, seed: 1)).status == 200) }
        #expect(raw.send("PUT", "/bucket/list/plain-mpu-like", body: [1, 2, 3]).status == 200)
        for query in ["list-type=2&prefix=list%2F", "prefix=list%2F", "versions&prefix=list%2F"] {
            let list = gateway.send("GET", "/bucket?\(query)")
            #expect(list.status == 200)
            for size in sizes { #expect(list.bodyText.contains("<Key>list/\(size)</Key>"), "\(query)") }
            let listed = list.bodyText.components(separatedBy: "<Size>").dropFirst().map { Int($0.prefix { $0.isNumber })! }
            #expect(Set(listed).isSuperset(of: Set(sizes)), "\(query): \(listed)")
            #expect(list.head?.contentLength == Int64(list.body.count))
        }
    }

    @Test func conditionalRequestsUseThePlaintextETag() {
        let content = Array("conditional".utf8)
        let put = gateway.send("PUT", "/bucket/cond", body: content)
        let etag = gateway.header(put, "ETag")!
        #expect(gateway.send("GET", "/bucket/cond", headers: [(name: "If-None-Match", value: etag)]).status == 304)
        #expect(gateway.send("HEAD", "/bucket/cond", headers: [(name: "If-None-Match", value: etag)]).status == 304)
        #expect(gateway.send("GET", "/bucket/cond", headers: [(name: "If-Match", value: etag)]).body == content)
        let failed = gateway.send("GET", "/bucket/cond", headers: [(name: "If-Match", value: "\"feedface\"")])
        #expect(failed.status == 412)
        #expect(failed.errorCode == "PreconditionFailed")
        #expect(gateway.send("GET", "/bucket/cond", headers: [(name: "If-Modified-Since", value: "Sat, 01 Jan 2000 00:00:00 GMT")]).body == content)
        #expect(gateway.send("GET", "/bucket/cond", headers: [(name: "If-Unmodified-Since", value: "Sat, 01 Jan 2000 00:00:00 GMT")]).status == 412)
    }

    @Test func plainObjectsAreServedAsStored() {
        let content = Self.content(70_000, seed: 5)
        #expect(raw.send("PUT", "/bucket/legacy", body: content).status == 200)
        #expect(gateway.send("GET", "/bucket/legacy").body == content)
        #expect(gateway.send("HEAD", "/bucket/legacy").head?.contentLength == 70_000)
        let ranged = gateway.send("GET", "/bucket/legacy", headers: [(name: "Range", value: "bytes=5-9")])
        #expect(ranged.body == Array(content[5...9]))
        let missing = gateway.send("GET", "/bucket/missing")
        #expect(missing.status == 404)
        #expect(missing.errorCode == "NoSuchKey")
    }

    /// Whatever the query, an object body reaches the backend sealed or not at all, and a read never
    /// returns ciphertext or the gateway's metadata.
    @Test func unknownQueriesFailClosed() throws {
        let content = Array("fail closed, never open".utf8)
        let stored: (String) -> RecordingWriter = { self.raw.send("GET", "/bucket/\($0)") }
        func isCiphertext(_ w: RecordingWriter) -> Bool {
            w.status == 200 && w.head?.headers["x-amz-meta-s3eg-version"] == "2" && w.body != content
        }
        for query in ["foo=bar", "x-id=PutObject", "versionId=3", "X-Amz-Foo=1"] {
            let key = "fc-\(query.prefix(3))"
            let put = gateway.send("PUT", "/bucket/\(key)?\(query)", body: content)
            #expect(put.status == 200, "\(query): \(put.bodyText)")
            #expect(isCiphertext(stored(key)), "\(query)")
            // S3 ignores versionId on PUT; on GET it names a version, which does not exist here.
            let get = gateway.send("GET", "/bucket/\(key)?\(query == "versionId=3" ? "foo=bar" : query)")
            #expect(get.body == content, "\(query)")
            #expect(get.head?.headers.contains { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") } == false)
        }
        for (method, query, code) in [("PUT", "foo", "NotImplemented"), ("PUT", "uploadId=u", "InvalidRequest"),
                                      ("PUT", "UploadId=u&partNumber=1", "InvalidArgument"), ("PUT", "renameObject", "NotImplemented"),
                                      ("PUT", "torrent", "MethodNotAllowed")] {
            let put = gateway.send(method, "/bucket/refused?\(query)", body: content)
            #expect(put.errorCode == code, "\(method) ?\(query): \(put.bodyText)")
            #expect(raw.send("HEAD", "/bucket/refused").status == 404, "\(method) ?\(query) stored something")
        }
        #expect(gateway.send("PUT", "/bucket/fc-enc", body: content).status == 200)
        for query in ["torrent", "attributes", "foo", "VersionId=1"] {
            let get = gateway.send("GET", "/bucket/fc-enc?\(query)")
            #expect((get.status ?? 0) >= 400, "GET ?\(query)")
            #expect(get.body != content && !get.bodyText.contains("s3eg"), "GET ?\(query)")
        }
        let select = gateway.send("POST", "/bucket/fc-enc?select&select-type=2", body: Array("<x/>".utf8))
        #expect(select.errorCode == "NotImplemented")
        #expect(select.bodyText.contains("SelectObjectContent"))
        let form = gateway.send("POST", "/bucket", body: Array("--form--".utf8))
        #expect(form.errorCode == "NotImplemented")
        // Metadata sub-resources are forwarded (their documents carry no object data).
        let tagging = Array("<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>".utf8)
        #expect(gateway.send("PUT", "/bucket/fc-enc?tagging", body: tagging).status == 200)
        #expect(gateway.send("GET", "/bucket/fc-enc?tagging").bodyText.contains("<Key>a</Key>"))
        #expect(gateway.send("GET", "/bucket?versioning").status == 200)
        // A client cannot plant the gateway's metadata through any operation.
        let planted = gateway.send("PUT", "/bucket/fc-enc?tagging", body: tagging, headers: [(name: "x-amz-meta-s3eg-etag", value: "0")])
        #expect(planted.errorCode == "InvalidArgument")
    }

    @Test func aPassThroughGatewayNeverRelaysAnEncryptedObject() throws {
        let content = Self.content(1000, seed: 9)
        #expect(gateway.send("PUT", "/bucket/pt-enc", body: content).status == 200)
        let plain = try HandlerHarness(backendEndpoint: moto.endpoint)
        for method in ["GET", "HEAD"] {
            let got = plain.send(method, "/bucket/pt-enc")
            #expect(got.status == 501, "\(method)")
            #expect(got.head?.headers.contains { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") } == false)
            #expect(!got.bodyText.contains("s3eg") && got.body != raw.send("GET", "/bucket/pt-enc").body)
        }
        #expect(plain.send("GET", "/bucket/pt-enc").errorCode == "NotImplemented")
    }

    @Test func plaintextReadsCanBeRefused() throws {
        let strict = try HandlerHarness(backendEndpoint: moto.endpoint, encryptor: Self.encryptor,
                                        encryptionObserver: events, allowPlaintextReads: false)
        let content = Self.content(5000, seed: 12)
        #expect(raw.send("PUT", "/bucket/planted", body: content).status == 200)
        #expect(strict.send("PUT", "/bucket/sealed", body: content).status == 200)
        for method in ["GET", "HEAD"] {
            let got = strict.send(method, "/bucket/planted")
            #expect(got.status == 403, "\(method)")
            #expect(got.body != content)
            #expect(strict.send(method, "/bucket/sealed").status == 200)
        }
        #expect(strict.send("GET", "/bucket/planted").errorCode == "AccessDenied")
        let copy = strict.send("PUT", "/bucket/planted-copy", headers: [(name: "x-amz-copy-source", value: "/bucket/planted")])
        #expect(copy.errorCode == "AccessDenied")
        #expect(raw.send("HEAD", "/bucket/planted-copy").status == 404)
        #expect(strict.send("GET", "/bucket/missing-entirely").errorCode == "NoSuchKey")
        // The default (migration) serves it.
        #expect(gateway.send("GET", "/bucket/planted").body == content)
    }
}

@Suite struct EncryptionHandlerPureTests {
    @Test func listingRewriteTouchesOnlySizesOfEntries() {
        let xml = "<ListBucketResult><Name>b</Name><Contents><Key>a</Key><ETag>&quot;x&quot;</ETag><Size>65570</Size></Contents>"
            + "<Contents><Key>mpu</Key><ETag>&quot;x-3&quot;</ETag><Size>65570</Size></Contents>"
            + "<Contents><Key>odd</Key><Size>5</Size></Contents>"
            + "<Version><Key>v</Key><Size>16</Size></Version><DeleteMarker><Key>d</Key></DeleteMarker></ListBucketResult>"
        let out = String(decoding: ListingSizeRewriter.rewrite(Array(xml.utf8)), as: UTF8.self)
        let expected = "<ListBucketResult><Name>b</Name><Contents><Key>a</Key><ETag>&quot;x&quot;</ETag><Size>65538</Size></Contents>"
            + "<Contents><Key>mpu</Key><ETag>&quot;x-3&quot;</ETag><Size>65446</Size></Contents>"
            + "<Contents><Key>odd</Key><Size>5</Size></Contents>"
            + "<Version><Key>v</Key><Size>0</Size></Version><DeleteMarker><Key>d</Key></DeleteMarker></ListBucketResult>"
        #expect(out == expected)
    }

    @Test func listingRewriteSurvivesMutatedDocuments() {
        let base = Array(("<ListBucketResult><Contents><Key>a</Key><Size>65570</Size></Contents>"
            + "<Contents><Key>b</Key><ETag>e</ETag><Size>1048832</Size></Contents></ListBucketResult>").utf8)
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            var doc = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<doc.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: doc[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: doc.remove(at: i)
                default: doc.insert(contentsOf: Array("<Size>".utf8), at: i)
                }
            }
            let out = ListingSizeRewriter.rewrite(doc)
            // Only digits inside <Size> change, and sizes only shrink: the document never grows.
            #expect(out.count <= doc.count)
        }
    }

    @Test func conditionalEvaluation() {
        let etag = "\"abc\""
        let date = "Wed, 21 Oct 2015 07:28:00 GMT"
        func eval(_ headers: [(String, String)]) -> ConditionalOutcome {
            ConditionalRequest.evaluate(headers: HTTPFields(headers.map { (name: $0.0, value: $0.1) }), etag: etag, lastModified: date)
        }
        #expect(eval([]) == .proceed)
        #expect(eval([("If-Match", "\"abc\"")]) == .proceed)
        #expect(eval([("If-Match", "abc")]) == .proceed)
        #expect(eval([("If-Match", "\"x\", \"abc\"")]) == .proceed)
        #expect(eval([("If-Match", "\"x\"")]) == .preconditionFailed)
        #expect(eval([("If-None-Match", "*")]) == .notModified)
        #expect(eval([("If-None-Match", "W/\"abc\"")]) == .notModified)
        #expect(eval([("If-None-Match", "\"x\"")]) == .proceed)
        #expect(eval([("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT")]) == .notModified)
        #expect(eval([("If-Modified-Since", "Wed, 21 Oct 2015 07:27:59 GMT")]) == .proceed)
        #expect(eval([("If-Unmodified-Since", "Tue, 20 Oct 2015 07:28:00 GMT")]) == .preconditionFailed)
        #expect(eval([("If-Unmodified-Since", "garbage")]) == .proceed)
        // If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since (RFC 9110 §13.2.2).
        #expect(eval([("If-Match", "\"abc\""), ("If-Unmodified-Since", "Tue, 20 Oct 2015 07:28:00 GMT")]) == .proceed)
        #expect(eval([("If-None-Match", "\"x\""), ("If-Modified-Since", "Thu, 22 Oct 2015 07:28:00 GMT")]) == .proceed)
        #expect(ConditionalRequest.evaluateCopySource(headers: ["x-amz-copy-source-if-none-match": "\"abc\""], etag: etag,
                                                      lastModified: date) == .preconditionFailed)
    }

    @Test func copySourceParsing() {
        #expect(CopySource.parse("/b/k%20x?versionId=v1") == CopySource(bucket: "b", key: "k x", versionID: "v1"))
        #expect(CopySource.parse("b/dir/k") == CopySource(bucket: "b", key: "dir/k", versionID: nil))
        #expect(CopySource.parse("b") == nil)
        #expect(CopySource.parse("/b/") == nil)
        #expect(CopySource.parse("") == nil)
        #expect(CopySource.parse("b/%zz") == nil)
    }
}
