import Foundation
@testable import Shared
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
    let unrecorded = Mutex<[String]>([])
    func etagNotRecorded(bucket: String, key: String, requestID: String, reason: String) {
        unrecorded.withLock { $0.append("\(key): \(reason)") }
    }
    let estimated = Mutex<[String]>([])
    func listingSizeEstimated(bucket: String, key: String, reason: String) { estimated.withLock { $0.append(key) } }
}

extension HandlerHarness {
    /// A harness whose handler encrypts (the default `init` is a pass-through gateway).
    init(backendEndpoint: String, encryptor: ObjectEncryptor, encryptionObserver: any EncryptionObserver,
         allowPlaintextReads: Bool = true, uploadChecksums: Bool = false) throws {
        backend = try BackendClient(configuration: BackendConfiguration(endpoint: backendEndpoint, accessKey: "testing", secretKey: "testing",
                                                                        uploadChecksums: uploadChecksums),
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
@Suite(.serialized) final class EncryptedObjectHandlerMotoTests {
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

    /// A single-part object has one part, the whole object, read as S3 reads it (206 with its Content-Range, no
    /// part count); part 2 does not exist. An empty object's part has no range to name.
    @Test func partNumberOneOfASinglePartObjectIsTheWholeObject() throws {
        for size in [1, 200_003] {
            let content = Self.content(size, seed: UInt64(size) &+ 7)
            let key = "/bucket/part-\(size)"
            #expect(gateway.send("PUT", key, body: content).status == 200)
            for method in ["GET", "HEAD"] {
                let got = gateway.send(method, "\(key)?partNumber=1")
                #expect(got.status == 206 && got.head?.contentLength == Int64(size), "\(method) \(size)")
                #expect(got.body == (method == "GET" ? content : []))
                #expect(gateway.header(got, "Content-Range") == "bytes 0-\(size - 1)/\(size)")
                #expect(gateway.header(got, "x-amz-mp-parts-count") == nil)
                #expect(gateway.header(got, "ETag") == "\"\(Encoding.hex(Digest.hash(.md5, content)))\"")
            }
            let second = gateway.send("GET", "\(key)?partNumber=2")
            #expect(second.status == 416 && second.errorCode == "InvalidPartNumber")
        }
        #expect(gateway.send("PUT", "/bucket/part-empty", body: []).status == 200)
        let empty = gateway.send("GET", "/bucket/part-empty?partNumber=1")
        #expect(empty.status == 200 && empty.head?.contentLength == 0 && empty.body.isEmpty)
        #expect(gateway.header(empty, "Content-Range") == nil)
        #expect(gateway.send("GET", "/bucket/part-empty?partNumber=2").errorCode == "InvalidPartNumber")
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

    /// A body sealed in memory (its ETag then comes from the verified Content-MD5, not hashed again) and a streamed one.
    @Test(arguments: [100_000, (1 << 20) + 100])
    func aWrongContentMD5StoresNothingAndARightOneIsTheETag(size: Int) {
        let content = Self.content(size, seed: 3)
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
        #expect(gateway.send("GET", "/bucket/md5").body == content)
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

        // Copy onto itself without a change is refused, as S3 refuses it; with REPLACE it re-wraps in place.
        let before = raw.header(raw.send("HEAD", "/bucket/src"), "x-amz-meta-s3eg-wrapped-key")
        let unchanged = gateway.send("PUT", "/bucket/src", headers: [(name: "x-amz-copy-source", value: "/bucket/src")])
        #expect(unchanged.status == 400)
        #expect(unchanged.errorCode == "InvalidRequest")
        #expect(raw.header(raw.send("HEAD", "/bucket/src"), "x-amz-meta-s3eg-wrapped-key") == before)
        let replacedInPlace = gateway.send("PUT", "/bucket/src", headers: [
            (name: "x-amz-copy-source", value: "/bucket/src"), (name: "x-amz-metadata-directive", value: "REPLACE"),
            (name: "x-amz-meta-color", value: "green")])
        #expect(replacedInPlace.status == 200, "\(replacedInPlace.bodyText)")
        #expect(replacedInPlace.bodyText.contains(Encoding.hex(Digest.hash(.md5, content))))
        #expect(raw.header(raw.send("HEAD", "/bucket/src"), "x-amz-meta-s3eg-wrapped-key") != before)
        let inPlace = gateway.send("GET", "/bucket/src")
        #expect(inPlace.body == content)
        #expect(gateway.header(inPlace, "x-amz-meta-color") == "green")

        let failed = gateway.send("PUT", "/bucket/nope", headers: [(name: "x-amz-copy-source", value: "/bucket/src"),
                                                                   (name: "x-amz-copy-source-if-match", value: "\"0123\"")])
        #expect(failed.status == 412)
        // A missing source is the backend's own error (a HEAD's has no body), and nothing is written.
        for (source, code) in [("/bucket/no-such-source", "NoSuchKey"), ("/no-such-bucket/src", "NoSuchBucket")] {
            let missing = gateway.send("PUT", "/bucket/from-missing", headers: [(name: "x-amz-copy-source", value: source)])
            #expect(missing.errorCode == code, "\(source): \(missing.bodyText)")
            #expect(raw.send("HEAD", "/bucket/from-missing").status == 404)
        }
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
        // GetObjectAttributes too: its document would give the ciphertext's size and ETag. A plain object's is forwarded.
        let wanted = [(name: "x-amz-object-attributes", value: "ETag,ObjectSize")]
        #expect(plain.send("GET", "/bucket/pt-enc?attributes", headers: wanted).errorCode == "NotImplemented")
        #expect(raw.send("PUT", "/bucket/pt-plain", body: content).status == 200)
        let attributes = plain.send("GET", "/bucket/pt-plain?attributes", headers: wanted)
        #expect(attributes.status == 200 && attributes.bodyText.contains("<ObjectSize>1000</ObjectSize>"), "\(attributes.bodyText)")
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

    // MARK: ETags, conditional writes, listings (issue 7 §3)

    /// A streamed upload without Content-MD5 gets its plaintext MD5 recorded after the upload (self-copy), so
    /// PUT, HEAD and GET agree on the MD5 and the listing shows a form that is visibly not one; in a
    /// versioned bucket the client's PUT still leaves one version.
    @Test(arguments: ["/bucket", "/versioned"])
    func streamedUploadsGetThePlaintextMD5(bucket: String) throws {
        if bucket == "/versioned" {
            #expect(raw.send("PUT", bucket).status == 200)
            let on = Array("<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>".utf8)
            #expect(raw.send("PUT", "\(bucket)?versioning", body: on).status == 200)
        }
        let content = Self.content((3 << 20) + 17, seed: 21)
        let md5 = ClientETag.md5(Digest.hash(.md5, content))
        let put = gateway.send("PUT", "\(bucket)/streamed", body: content)
        #expect(put.status == 200, "\(put.bodyText)")
        #expect(gateway.header(put, "ETag") == md5)
        #expect(gateway.header(gateway.send("HEAD", "\(bucket)/streamed"), "ETag") == md5)
        let get = gateway.send("GET", "\(bucket)/streamed")
        #expect(get.body == content)
        #expect(gateway.header(get, "ETag") == md5)
        let stored = raw.send("HEAD", "\(bucket)/streamed")
        #expect(raw.header(stored, "x-amz-meta-s3eg-etag") == String(md5.dropFirst().dropLast()))
        let listing = gateway.send("GET", "\(bucket)?list-type=2&prefix=streamed").bodyText
        #expect(listing.contains("<Size>\(content.count)</Size>"), "\(listing)")
        let backendETag = try #require(raw.header(stored, "ETag"))
        #expect(listing.contains(String(backendETag.dropLast()) + "-1"), "\(listing)")
        if bucket == "/versioned" {
            let versions = raw.send("GET", "\(bucket)?versions&prefix=streamed").bodyText
            #expect(versions.components(separatedBy: "<Version>").count == 2, "\(versions)")
            #expect(versions.contains(try #require(gateway.header(put, "x-amz-version-id"))))
        }
        #expect(events.unrecorded.withLock { $0 }.isEmpty)
    }

    static func crc32(_ bytes: [UInt8]) -> ChecksumValue {
        let running = RunningChecksum(.crc32)
        bytes.withUnsafeBytes { running.update($0) }
        return running.finalize()
    }

    /// Flexible checksums (issue 8): verified on the way in, recorded in the authenticated metadata — up front for a
    /// header or a buffered body, in the same self-copy as the ETag for a streamed body whose checksum comes in the
    /// aws-chunked trailer (one extra request for both) — and returned for whole-object reads in checksum mode.
    @Test(arguments: [("header", 1000), ("header", (2 << 20) + 3), ("trailer", 1000), ("trailer", (2 << 20) + 3)])
    func checksumsAreRecordedAndReturned(how: String, size: Int) throws {
        let content = Self.content(size, seed: UInt64(size))
        let crc = Self.crc32(content)
        let key = "/bucket/checksum-\(how)-\(size)"
        let put: RecordingWriter
        if how == "header" {
            put = gateway.send("PUT", key, body: content, headers: [(name: "x-amz-checksum-crc32", value: crc.base64)])
        } else {
            let framed = AWSChunkedTestEncoder.encode(content, chunkSize: 64 << 10, mode: .unsignedWithTrailer,
                                                      trailer: [(name: "x-amz-checksum-crc32", value: crc.base64)])
            put = gateway.send("PUT", key, body: framed, headers: [
                (name: "Content-Encoding", value: "aws-chunked"), (name: "x-amz-decoded-content-length", value: String(size)),
                (name: "x-amz-trailer", value: "x-amz-checksum-crc32")], payload: .claimed(AWSChunkedMode.unsignedWithTrailer.rawValue))
        }
        #expect(put.status == 200, "\(put.bodyText)")
        #expect(gateway.header(put, "x-amz-checksum-crc32") == crc.base64)
        #expect(gateway.header(put, "ETag") == ClientETag.md5(Digest.hash(.md5, content)))
        let stored = raw.send("HEAD", key)
        #expect(raw.header(stored, "x-amz-meta-s3eg-checksum") == "CRC32:" + crc.base64)
        let mode = [(name: "x-amz-checksum-mode", value: "ENABLED")]
        for method in ["GET", "HEAD"] {
            let read = gateway.send(method, key, headers: mode)
            #expect(gateway.header(read, "x-amz-checksum-crc32") == crc.base64, "\(method)")
            #expect(gateway.header(read, "x-amz-checksum-type") == "FULL_OBJECT", "\(method)")
            // Not asked for, or a range: none (as S3).
            #expect(gateway.header(gateway.send(method, key), "x-amz-checksum-crc32") == nil, "\(method)")
            let ranged = gateway.send(method, key, headers: mode + [(name: "Range", value: "bytes=0-9")])
            #expect(ranged.status == 206)
            #expect(gateway.header(ranged, "x-amz-checksum-crc32") == nil, "\(method)")
        }
        #expect(gateway.send("GET", key, headers: mode).body == content)
        // GetObjectAttributes reports the plaintext: its size, the ETag clients see (unquoted), the recorded checksum.
        let attributes = gateway.send("GET", key + "?attributes", headers: [
            (name: "x-amz-object-attributes", value: "ETag,Checksum,ObjectParts,StorageClass,ObjectSize")])
        #expect(attributes.status == 200, "\(attributes.bodyText)")
        let document = try XMLTree.parse(attributes.body).root
        #expect(document.child("ObjectSize")?.text == String(size))
        #expect(document.child("ETag")?.text == Encoding.hex(Digest.hash(.md5, content)))
        #expect(document.child("Checksum")?.child("ChecksumCRC32")?.text == crc.base64)
        #expect(document.child("StorageClass")?.text == "STANDARD" && document.child("ObjectParts") == nil)
        #expect(gateway.header(attributes, "Last-Modified") != nil)
        // A wrong checksum stores nothing.
        var wrong = crc.bytes
        wrong[0] ^= 1
        let bad = ChecksumValue(algorithm: .crc32, bytes: wrong).base64
        let refused = gateway.send("PUT", key + "-bad", body: content, headers: [(name: "x-amz-checksum-crc32", value: bad)])
        #expect(refused.status == 400 || refused.abortedWith != nil)
        #expect(raw.send("HEAD", key + "-bad").status == 404)
        #expect(events.unrecorded.withLock { $0 }.isEmpty)
    }

    /// GetObjectAttributes of a plain object reports it as stored; of a missing one, NoSuchKey; a request without
    /// (or with an unknown) attribute is refused before the backend is asked.
    @Test func objectAttributesOfPlainAndMissingObjects() throws {
        let content = Array("stored as it was written".utf8)
        #expect(raw.send("PUT", "/bucket/plain-attributes", body: content).status == 200)
        let wanted = [(name: "x-amz-object-attributes", value: "ETag,ObjectSize,ObjectParts")]
        let plain = gateway.send("GET", "/bucket/plain-attributes?attributes", headers: wanted)
        #expect(plain.status == 200, "\(plain.bodyText)")
        let document = try XMLTree.parse(plain.body).root
        #expect(document.child("ObjectSize")?.text == String(content.count))
        #expect(document.child("ETag")?.text == Encoding.hex(Digest.hash(.md5, content)) && document.child("ObjectParts") == nil)
        // The backend's own error, which a HEAD cannot carry, with the gateway's request id.
        let missing = gateway.send("GET", "/bucket/no-such-object?attributes", headers: wanted)
        #expect(missing.status == 404 && missing.errorCode == "NoSuchKey")
        #expect(missing.bodyText.contains("<RequestId>\(try #require(gateway.observer.last).requestID)</RequestId>"), "\(missing.bodyText)")
        #expect(gateway.send("GET", "/no-such-bucket/key?attributes", headers: wanted).errorCode == "NoSuchBucket")
        #expect(gateway.send("GET", "/bucket/plain-attributes?attributes").errorCode == "InvalidArgument")
        let unknown = gateway.send("GET", "/bucket/plain-attributes?attributes", headers: [(name: "x-amz-object-attributes", value: "Owner")])
        #expect(unknown.errorCode == "InvalidArgument")
    }

    /// A backend-side edit of the recorded ETag fails the metadata MAC: no 304 on a forged ETag, no wrong ETag.
    @Test func aForgedETagRecordIsNeverBelieved() throws {
        let content = Self.content(1000, seed: 31)
        #expect(gateway.send("PUT", "/bucket/forged-etag", body: content).status == 200)
        let stored = raw.send("GET", "/bucket/forged-etag")
        var meta = stored.head!.headers.filter { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") }
        let forged = String(repeating: "ab", count: 16)
        meta = meta.map { $0.name.lowercased() == "x-amz-meta-s3eg-etag" ? (name: $0.name, value: forged) : $0 }
        #expect(raw.send("PUT", "/bucket/forged-etag", body: stored.body, headers: meta).status == 200)
        let conditional = gateway.send("GET", "/bucket/forged-etag", headers: [(name: "If-None-Match", value: "\"\(forged)\"")])
        #expect(conditional.status == 500)
        #expect(conditional.errorCode == "InternalError")
        #expect(gateway.send("HEAD", "/bucket/forged-etag").status == 500)
    }

    /// With verified metadata remembered, a hot object's later reads skip the checks, but any backend-side edit
    /// of its metadata, or the same metadata under another key, is checked again and fails.
    @Test func rememberedMetadataNeverCoversAnEdit() throws {
        let cache = VerifiedMetadataCache(capacity: 16, ttl: .seconds(300))
        let cached = try HandlerHarness(backendEndpoint: moto.endpoint,
                                        encryptor: ObjectEncryptor(keys: EncryptionFixtures.ring("handler-tests"), verified: cache),
                                        encryptionObserver: events)
        let content = Self.content(3000, seed: 32)
        #expect(cached.send("PUT", "/bucket/remembered", body: content).status == 200)
        for _ in 0..<2 {
            let get = cached.send("GET", "/bucket/remembered")
            #expect(get.status == 200)
            #expect(get.body == content)
            let ranged = cached.send("GET", "/bucket/remembered", headers: [(name: "Range", value: "bytes=10-19")])
            #expect(ranged.status == 206)
            #expect(ranged.body == Array(content[10...19]))
            #expect(cached.send("HEAD", "/bucket/remembered").status == 200)
        }
        #expect(cache.count >= 1)
        let stored = raw.send("GET", "/bucket/remembered")
        let meta = stored.head!.headers.filter { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") }
        // The same metadata and body under another key: its MAC names the first key.
        #expect(raw.send("PUT", "/bucket/remembered-moved", body: stored.body, headers: meta).status == 200)
        #expect(cached.send("GET", "/bucket/remembered-moved").status == 500)
        #expect(cached.send("HEAD", "/bucket/remembered-moved").status == 500)
        // A forged ETag record in place.
        let forged = meta.map { $0.name.lowercased() == "x-amz-meta-s3eg-etag" ? (name: $0.name, value: String(repeating: "ab", count: 16)) : $0 }
        #expect(raw.send("PUT", "/bucket/remembered", body: stored.body, headers: forged).status == 200)
        for _ in 0..<2 {
            #expect(cached.send("GET", "/bucket/remembered").status == 500)
            #expect(cached.send("HEAD", "/bucket/remembered").status == 500)
        }
        // The original metadata back: served again.
        #expect(raw.send("PUT", "/bucket/remembered", body: stored.body, headers: meta).status == 200)
        #expect(cached.send("GET", "/bucket/remembered").body == content)
    }

    @Test func conditionalWritesCompareTheETagsClientsSee() throws {
        let first = Array("first version".utf8)
        #expect(gateway.send("PUT", "/bucket/cw", body: first).status == 200)
        let md5 = ClientETag.md5(Digest.hash(.md5, first))
        let backendETag = try #require(raw.header(raw.send("HEAD", "/bucket/cw"), "ETag"))
        func put(_ headers: [(name: String, value: String)]) -> RecordingWriter {
            gateway.send("PUT", "/bucket/cw", body: Array("next".utf8), headers: headers)
        }
        #expect(put([(name: "If-None-Match", value: "*")]).status == 412)
        #expect(put([(name: "If-None-Match", value: md5)]).status == 412)
        #expect(put([(name: "If-Match", value: "\"0123456789abcdef0123456789abcdef\"")]).status == 412)
        // The backend's own ETag (MD5 of the ciphertext) is not one a client was shown.
        #expect(put([(name: "If-Match", value: backendETag)]).status == 412)
        #expect(gateway.send("GET", "/bucket/cw").body == first)
        #expect(put([(name: "If-Match", value: md5)]).status == 200)
        // The listing's form of the new ETag works as well.
        let listedETag = ClientETag.opaque(try #require(raw.header(raw.send("HEAD", "/bucket/cw"), "ETag")))
        #expect(put([(name: "If-Match", value: listedETag)]).status == 200)
        #expect(put([(name: "If-None-Match", value: "\"other\"")]).status == 200)
        #expect(gateway.send("PUT", "/bucket/cw-missing", body: first, headers: [(name: "If-Match", value: md5)]).status == 404)
        #expect(gateway.send("PUT", "/bucket/cw-new", body: first, headers: [(name: "If-None-Match", value: "*")]).status == 200)
    }

    @Test func backendErrorsCarryTheGatewaysRequestID() throws {
        // The id the request was served under (its summary's), in the backend's rewritten error document.
        func carriesTheID(_ response: RecordingWriter) throws -> Bool {
            response.bodyText.contains("<RequestId>\(try #require(gateway.observer.last).requestID)</RequestId>")
        }
        let missing = gateway.send("GET", "/bucket/no-such-key-here")
        #expect(missing.status == 404)
        #expect(try carriesTheID(missing), "\(missing.bodyText)")
        let listing = gateway.send("GET", "/no-such-bucket-here?list-type=2")
        #expect(listing.status == 404)
        #expect(try carriesTheID(listing), "\(listing.bodyText)")
        let tagging = gateway.send("GET", "/bucket/no-such-key-here?tagging")
        #expect(try carriesTheID(tagging), "\(tagging.bodyText)")
    }

    /// Writes a gateway multipart object straight to the backend (the multipart handlers are not needed for
    /// what a listing sees): parts of `sizes` plaintext bytes, sealed as the format says.
    func writeMultipart(_ key: String, sizes: [Int]) throws -> [UInt8] {
        let identity = ObjectIdentity(bucket: "bucket", key: key)
        let pending = try Self.encryptor.beginMultipartObject(identity)
        let created = raw.send("POST", "/bucket/\(key)?uploads", headers: pending.metadata.headers.map { (name: $0.key, value: $0.value) })
        let text = created.bodyText
        let backendID = try #require(text.range(of: "<UploadId>").flatMap { open in
            text.range(of: "</UploadId>").map { String(text[open.upperBound..<$0.lowerBound]) } })
        let upload = try Self.encryptor.openUpload(try Self.encryptor.uploadID(for: pending, backendUploadID: backendID), identity: identity)
        var plaintext: [UInt8] = []
        var completion = "<CompleteMultipartUpload>"
        for (index, size) in sizes.enumerated() {
            let part = Self.content(size, seed: UInt64(index + 100))
            plaintext += part
            let (header, sealer) = try Self.encryptor.beginPart(of: upload, partNumber: index + 1, plaintextLength: size)
            var body = header
            try sealer.update(part) { body.append(contentsOf: $0) }
            try sealer.finish { body.append(contentsOf: $0) }
            let sent = raw.send("PUT", "/bucket/\(key)?partNumber=\(index + 1)&uploadId=\(URIEncoding.encode(backendID))", body: body)
            completion += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(try #require(raw.header(sent, "ETag")))</ETag></Part>"
        }
        completion += "</CompleteMultipartUpload>"
        let completed = raw.send("POST", "/bucket/\(key)?uploadId=\(URIEncoding.encode(backendID))", body: Array(completion.utf8))
        #expect(completed.status == 200, "\(completed.bodyText)")
        return plaintext
    }

    /// Multipart entries list their exact plaintext size whatever their part sizes (part headers are read),
    /// and a plain multipart object keeps its own.
    @Test func multipartListingSizesAreExact() throws {
        let aligned = try writeMultipart("mp/aligned", sizes: [5 << 20, 5 << 20, 1000])
        let unaligned = try writeMultipart("mp/unaligned", sizes: [(5 << 20) + 1, (5 << 20) + 1, 7])
        let plainCreated = raw.send("POST", "/bucket/mp/plain?uploads").bodyText
        let plainID = try #require(plainCreated.range(of: "<UploadId>").flatMap { open in
            plainCreated.range(of: "</UploadId>").map { String(plainCreated[open.upperBound..<$0.lowerBound]) } })
        let plainPart = raw.send("PUT", "/bucket/mp/plain?partNumber=1&uploadId=\(URIEncoding.encode(plainID))", body: Array(repeating: 7, count: 65570))
        let done = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\(raw.header(plainPart, "ETag")!)</ETag></Part></CompleteMultipartUpload>"
        #expect(raw.send("POST", "/bucket/mp/plain?uploadId=\(URIEncoding.encode(plainID))", body: Array(done.utf8)).status == 200)
        for query in ["list-type=2&prefix=mp%2F", "prefix=mp%2F", "versions&prefix=mp%2F", "list-type=2&prefix=mp%2F&encoding-type=url"] {
            for _ in 0..<2 {   // the second listing comes from the cache
                let answer = gateway.send("GET", "/bucket?\(query)")
                let listing = answer.bodyText
                #expect(answer.status == 200, "\(query): \(listing)")
                let sizes = Dictionary(ListingRewriter.entries(answer.body).compactMap { entry -> (String, Int)? in
                    guard let key = entry.key, let size = entry.size else { return nil }
                    return (String(decoding: answer.body[key], as: UTF8.self).replacingOccurrences(of: "%2F", with: "/"),
                            Int(String(decoding: answer.body[size], as: UTF8.self)) ?? -1)
                }, uniquingKeysWith: { a, _ in a })
                #expect(sizes == ["mp/aligned": aligned.count, "mp/unaligned": unaligned.count, "mp/plain": 65570], "\(query)")
                #expect(listing.contains("-3&quot;</ETag>") || listing.contains("-3\"</ETag>"), "\(query): multipart ETags stay -N")
            }
        }
    }
}

@Suite struct EncryptionHandlerPureTests {
    @Test func listingRewriteTouchesOnlySizesAndETagsOfEntries() {
        let xml = "<ListBucketResult><Name>b</Name><Contents><Key>a</Key><ETag>&quot;x&quot;</ETag><Size>65570</Size></Contents>"
            + "<Contents><Key>mpu &amp; co</Key><ETag>&quot;x-3&quot;</ETag><Size>5242988</Size></Contents>"
            + "<Contents><Key>plain-mpu</Key><ETag>\"y-2\"</ETag><Size>65570</Size></Contents>"
            + "<Contents><Key>odd</Key><Size>5</Size></Contents>"
            + "<Version><Key>v</Key><VersionId>v1</VersionId><ETag>\"e\"</ETag><Size>16</Size></Version>"
            + "<DeleteMarker><Key>d</Key></DeleteMarker></ListBucketResult>"
        let multipart = ListingRewriter.multipartEntries(Array(xml.utf8))
        #expect(multipart.map(\.key) == ["mpu & co", "plain-mpu"])
        #expect(multipart.first?.partCount == 3)
        #expect(multipart.first?.backendETag == "\"x-3\"")
        let sizes = [multipart[0]: 5_242_880]
        let out = String(decoding: ListingRewriter.rewrite(Array(xml.utf8), multipartSizes: sizes), as: UTF8.self)
        let expected = "<ListBucketResult><Name>b</Name><Contents><Key>a</Key><ETag>&quot;x-1&quot;</ETag><Size>65538</Size></Contents>"
            + "<Contents><Key>mpu &amp; co</Key><ETag>&quot;x-3&quot;</ETag><Size>5242880</Size></Contents>"
            + "<Contents><Key>plain-mpu</Key><ETag>\"y-2\"</ETag><Size>65570</Size></Contents>"
            + "<Contents><Key>odd</Key><Size>5</Size></Contents>"
            + "<Version><Key>v</Key><VersionId>v1</VersionId><ETag>\"e-1\"</ETag><Size>0</Size></Version>"
            + "<DeleteMarker><Key>d</Key></DeleteMarker></ListBucketResult>"
        #expect(out == expected)
    }

    @Test func listingKeysAreDecodedForTheBackend() {
        let xml = "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>dir%2Fa+b%C3%A9</Key><ETag>&#34;z-2&#34;</ETag>"
            + "<Size>9</Size></Contents></ListBucketResult>"
        #expect(ListingRewriter.multipartEntries(Array(xml.utf8)).map(\.key) == ["dir/a bé"])
        #expect(ListingRewriter.unescape("a&lt;b&#x41;&#66;&bogus;&") == "a<bAB&bogus;&")
    }

    @Test func listingRewriteSurvivesMutatedDocuments() {
        let base = Array(("<ListBucketResult><Contents><Key>a</Key><Size>65570</Size></Contents>"
            + "<Contents><Key>b</Key><ETag>e</ETag><Size>1048832</Size></Contents>"
            + "<Contents><Key>c</Key><ETag>\"f-2\"</ETag><Size>2000</Size></Contents></ListBucketResult>").utf8)
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            var doc = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<doc.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: doc[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: doc.remove(at: i)
                case 2: doc.insert(contentsOf: Array("<ETag>".utf8), at: i)
                default: doc.insert(contentsOf: Array("<Size>".utf8), at: i)
                }
            }
            let entries = ListingRewriter.multipartEntries(doc)
            let out = ListingRewriter.rewrite(doc, multipartSizes: Dictionary(entries.map { ($0, 1) }, uniquingKeysWith: { a, _ in a }))
            // Sizes only shrink and an ETag grows by "-1" at most: bounded growth, nothing else touched.
            #expect(out.count <= doc.count + 2 * ListingRewriter.entries(doc).count,
                    "\(String(decoding: doc, as: UTF8.self)) → \(String(decoding: out, as: UTF8.self))")
        }
    }

    @Test func clientETagsAreMD5sOrVisiblyNot() {
        #expect(ClientETag.opaque("\"0123456789abcdef0123456789abcdef\"") == "\"0123456789abcdef0123456789abcdef-1\"")
        #expect(ClientETag.opaque("\"abc-12\"") == "\"abc-12\"")
        #expect(ClientETag.opaque("abc") == "\"abc-1\"")
        #expect(ClientETag.opaque("W/\"abc\"") == "\"abc-1\"")
        #expect(ClientETag.opaque(" \"a-b\"\t") == "\"a-b\"")
        #expect(ClientETag.opaque("\"\"") == "\"-1\"")
        #expect(ClientETag.opaque(" \t\"abc\" ") == "\"abc-1\"")
        #expect(ClientETag.opaque(nil) == "\"-1\"" && ClientETag.opaque("  ") == "\"-1\"")
        #expect(ClientETag.opaque(nil) == "\"-1\"")
        for (listed, expected) in [("&quot;ab&quot;", "&quot;ab-1&quot;"), ("\"ab\"", "\"ab-1\""), ("&#34;ab&#34;", "&#34;ab-1&#34;"),
                                   ("ab", "ab-1"), ("ab-2", "ab-2")] {
            let xml = "<ListBucketResult><Contents><Key>k</Key><ETag>\(listed)</ETag></Contents></ListBucketResult>"
            #expect(String(decoding: ListingRewriter.rewrite(Array(xml.utf8)), as: UTF8.self) == xml.replacingOccurrences(of: listed, with: expected))
        }
        #expect(ClientETag.seen(primary: "\"p\"", backendETag: "\"b\"") == ["\"p\"", "\"b-1\""])
        #expect(ClientETag.seen(primary: "\"b-1\"", backendETag: "\"b\"") == ["\"b-1\""])
        #expect(ClientETag.md5([0xab, 0x01]) == "\"ab01\"")
    }

    @Test func backendErrorsCarryTheGatewaysRequestID() throws {
        let replaced = try #require(S3ErrorBody.withRequestID(Array(("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
            + "<RequestId>tx000-backend</RequestId><HostId>h</HostId></Error>").utf8), "GW1"))
        #expect(String(decoding: replaced, as: UTF8.self) == "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><RequestId>GW1</RequestId><HostId>h</HostId></Error>")
        let added = try #require(S3ErrorBody.withRequestID(Array("<Error><Code>X</Code></Error>".utf8), "GW<2>"))
        #expect(String(decoding: added, as: UTF8.self) == "<Error><Code>X</Code><RequestId>GW&lt;2&gt;</RequestId></Error>")
        #expect(S3ErrorBody.withRequestID(Array("<html>500</html>".utf8), "GW") == nil)
        #expect(S3ErrorBody.withRequestID([0xff, 0xfe], "GW") == nil)
    }

    @Test func copiesArePinnedToTheSourceThatWasChecked() {
        let stored = HTTPClientResponse(status: 200, headers: [(name: "ETag", value: "\"backend\""), (name: "x-amz-version-id", value: "v7")],
                                        body: [])
        let client: HTTPFields = ["x-amz-copy-source": "/b/a%20b", "x-amz-copy-source-if-match": "\"plain-md5\"",
                                  "x-amz-copy-source-if-none-match": "\"x\"", "x-amz-copy-if-match": "\"x\"", "Content-Type": "t"]
        let pinned = EncryptedObjectHandler.pinnedCopyHeaders(client, source: CopySource(bucket: "b", key: "a b"), stored: stored)
        #expect(pinned["x-amz-copy-source"] == "/b/a%20b?versionId=v7")
        #expect(pinned["x-amz-copy-source-if-match"] == "\"backend\"")
        #expect(pinned["x-amz-copy-if-match"] == "\"backend\"")
        #expect(pinned["x-amz-copy-source-if-none-match"] == nil)
        #expect(pinned["Content-Type"] == "t")
        let unversioned = HTTPClientResponse(status: 200, headers: [(name: "ETag", value: "\"e\""), (name: "x-amz-version-id", value: "null")],
                                             body: [])
        #expect(EncryptedObjectHandler.pinnedCopyHeaders(client, source: CopySource(bucket: "b", key: "k", versionID: "v1"),
                                                         stored: unversioned)["x-amz-copy-source"] == "/b/k?versionId=v1")
        #expect(EncryptedObjectHandler.pinnedCopyHeaders(client, source: CopySource(bucket: "b", key: "k"),
                                                         stored: unversioned)["x-amz-copy-source"] == "/b/k")
        // Ceph RGW takes a PUT's If-Match without quotes; it marks its answers with x-rgw-object-type.
        #expect(EncryptedObjectHandler.writePin("\"e\"", answer: unversioned) == "\"e\"")
        let rgw = HTTPClientResponse(status: 200, headers: [(name: "x-rgw-object-type", value: "Normal")], body: [])
        #expect(EncryptedObjectHandler.writePin("\"e\"", answer: rgw) == "e")
    }

    @Test func theAlignedFormulaIsTheFallbackForMultipartEntries() {
        // Three parts of 5 MiB, 5 MiB and 1000 bytes: L = Σ (36 + L(P)).
        let layout = ChunkLayout.default
        let stored = [5 << 20, 5 << 20, 1000].reduce(0) { $0 + 36 + layout.ciphertextLength(plaintextLength: $1) }
        let entry = ListingRewriter.MultipartEntry(key: "k", versionID: nil, storedSize: stored, partCount: 3, backendETag: "\"e-3\"")
        #expect(EncryptedObjectHandler.alignedMultipartSize(entry) == (10 << 20) + 1000)
        #expect(EncryptedObjectHandler.alignedMultipartSize(.init(key: "k", versionID: nil, storedSize: 50, partCount: 3, backendETag: "")) == nil)
    }

    @Test func copyResultsLoseTheBackendsChecksums() {
        let result = "<CopyObjectResult><ETag>\"e\"</ETag><LastModified>x</LastModified><ChecksumCRC32>AAAAAA==</ChecksumCRC32>"
            + "<ChecksumType>FULL_OBJECT</ChecksumType></CopyObjectResult>"
        let out = EncryptedObjectHandler.removingChecksums(from: Array(result.utf8))
        #expect(String(decoding: out, as: UTF8.self) == "<CopyObjectResult><ETag>\"e\"</ETag><LastModified>x</LastModified></CopyObjectResult>")
        let damaged = Array("<CopyObjectResult><Checksum".utf8)
        #expect(EncryptedObjectHandler.removingChecksums(from: damaged) == damaged)
    }

    @Test func selfCopiesMustChangeSomething() {
        #expect(!EncryptedObjectHandler.copyChangesTheObject(["x-amz-metadata-directive": "COPY"]))
        #expect(!EncryptedObjectHandler.copyChangesTheObject(["x-amz-tagging-directive": "REPLACE"]))
        #expect(EncryptedObjectHandler.copyChangesTheObject(["x-amz-metadata-directive": "replace"]))
        #expect(EncryptedObjectHandler.copyChangesTheObject(["x-amz-storage-class": "STANDARD_IA"]))
        #expect(EncryptedObjectHandler.copyChangesTheObject(["x-amz-server-side-encryption": "AES256"]))
    }

    /// An upload that puts the object under object lock keeps its one version: no self-copy for its late records.
    @Test func objectLockedUploadsAreNotRecordedByACopy() {
        #expect(EncryptedObjectHandler.recordsMayBeCopied(["Content-Type": "text/plain"]))
        #expect(EncryptedObjectHandler.recordsMayBeCopied(["x-amz-object-lock-legal-hold": "OFF"]))
        #expect(!EncryptedObjectHandler.recordsMayBeCopied(["x-amz-object-lock-legal-hold": "on"]))
        #expect(!EncryptedObjectHandler.recordsMayBeCopied(["X-Amz-Object-Lock-Mode": "GOVERNANCE"]))
        #expect(!EncryptedObjectHandler.recordsMayBeCopied(["x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z"]))
    }

    @Test func conditionalEvaluation() {
        let etag = "\"abc\""
        let date = "Wed, 21 Oct 2015 07:28:00 GMT"
        func eval(_ headers: [(String, String)]) -> ConditionalOutcome {
            ConditionalRequest.evaluate(headers: HTTPFields(headers.map { (name: $0.0, value: $0.1) }), etags: [etag], lastModified: date)
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
        // Either form of an object's ETag (HEAD's and the listing's) satisfies a condition.
        #expect(ConditionalRequest.evaluate(headers: ["If-Match": "\"abc-1\""], etags: ["\"md5\"", "\"abc-1\""], lastModified: nil) == .proceed)
        #expect(ConditionalRequest.evaluate(headers: ["If-None-Match": "\"md5\""], etags: ["\"md5\"", "\"abc-1\""], lastModified: nil) == .notModified)
        #expect(ConditionalRequest.evaluateCopySource(headers: ["x-amz-copy-source-if-none-match": "\"abc\""], etags: [etag],
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
