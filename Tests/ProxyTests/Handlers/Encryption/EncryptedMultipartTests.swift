import Foundation
import Shared
import Testing
@testable import Proxy

/// The multipart operations of an encrypting gateway against moto, in process: `gateway` encrypts, `raw` shows what
/// the backend really holds.
@Suite(.serialized) final class EncryptedMultipartTests {
    let moto: MotoServer
    let gateway: HandlerHarness
    let raw: RawBackend
    let events = RecordingEncryptionObserver()
    static let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring("multipart-tests"))
    static let mib = 1 << 20
    /// moto enforces S3's 5 MiB minimum on every part but the last (on the stored, i.e. encrypted, size).
    static let partSize = 5 * mib

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

    static func text(_ writer: RecordingWriter, _ element: String) -> String? {
        guard let tree = try? XMLTree.parse(writer.body) else { return nil }
        func find(_ e: XMLTree.Element) -> String? {
            if e.name == element { return e.text }
            for child in e.children { if let found = find(child) { return found } }
            return nil
        }
        return find(tree.root)
    }

    private func create(_ key: String, headers: [(name: String, value: String)] = []) throws -> String {
        let created = gateway.send("POST", "/bucket/\(key)?uploads", headers: headers)
        #expect(created.status == 200, "\(created.bodyText)")
        return try #require(Self.text(created, "UploadId"))
    }

    private func put(_ key: String, _ uploadID: String, _ number: Int, _ body: [UInt8], headers: [(name: String, value: String)] = []) -> RecordingWriter {
        gateway.send("PUT", "/bucket/\(key)?partNumber=\(number)&uploadId=\(uploadID)", body: body, headers: headers)
    }

    private func complete(_ key: String, _ uploadID: String, _ parts: [(Int, String)]) -> RecordingWriter {
        let xml = "<CompleteMultipartUpload>" + parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\($0.1)</ETag></Part>" }.joined()
            + "</CompleteMultipartUpload>"
        return gateway.send("POST", "/bucket/\(key)?uploadId=\(uploadID)", body: Array(xml.utf8))
    }

    /// Compares big buffers without asking the test library for a diff of megabytes.
    static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.count == b.count && a == b }

    private static func md5ETag(_ bytes: [UInt8]) -> String { "\"\(Encoding.hex(Digest.hash(.md5, bytes)))\"" }

    @Test func partsOutOfOrderAndRetriedCompleteIntoAnObjectThatReadsBack() throws {
        let parts = [Self.content(Self.partSize, seed: 1), Self.content(Self.partSize, seed: 2), Self.content(300_001, seed: 3)]
        let uploadID = try create("big.bin", headers: [(name: "Content-Type", value: "application/x-big"),
                                                      (name: "x-amz-meta-owner", value: "ann")])
        #expect(uploadID.hasPrefix("s3eg2."))
        // Part 3, then 1, then a first attempt of part 2 with other content, then the real part 2.
        var etags: [Int: String] = [:]
        for (number, body) in [(3, parts[2]), (1, parts[0]), (2, Self.content(Self.partSize, seed: 99)), (2, parts[1])] {
            let answer = put("big.bin", uploadID, number, body)
            #expect(answer.status == 200, "\(answer.bodyText)")
            #expect(answer.head?.headers["ETag"] == Self.md5ETag(body), "a part's ETag is the MD5 of its plaintext")
            etags[number] = answer.head?.headers["ETag"]
        }
        // ListParts through the gateway: plaintext sizes, the client's upload id, ETags that are visibly not MD5s.
        let listed = gateway.send("GET", "/bucket/big.bin?uploadId=\(uploadID)")
        #expect(listed.status == 200)
        let tree = try XMLTree.parse(listed.body)
        #expect(tree.root.child("UploadId")?.text == uploadID)
        let listedParts = tree.root.children.filter { $0.name == "Part" }
        #expect(listedParts.compactMap { $0.child("Size")?.text } == parts.map { String($0.count) })
        #expect(listedParts.allSatisfy { $0.child("ETag")?.text.contains("-") == true })

        let done = complete("big.bin", uploadID, [(1, etags[1]!), (2, etags[2]!), (3, etags[3]!)])
        #expect(done.status == 200, "\(done.bodyText)")
        let objectETag = try #require(Self.text(done, "ETag"))
        #expect(objectETag.hasSuffix("-3\""))

        let plaintext = parts.flatMap { $0 }
        let got = gateway.send("GET", "/bucket/big.bin")
        #expect(got.status == 200 && Self.same(got.body, plaintext))
        #expect(got.head?.headers["ETag"] == objectETag)
        #expect(got.head?.headers["Content-Type"] == "application/x-big" && got.head?.headers["x-amz-meta-owner"] == "ann")
        #expect(got.head?.headers.contains { $0.name.lowercased().hasPrefix("x-amz-meta-s3eg-") } == false)
        let head = gateway.send("HEAD", "/bucket/big.bin")
        #expect(head.head?.contentLength == Int64(plaintext.count))
        for (a, b) in [(0, 0), (Self.partSize - 10, Self.partSize + 10), (Self.partSize * 2 - 1, plaintext.count - 1), (123, 2 * Self.partSize + 77)] {
            let ranged = gateway.send("GET", "/bucket/big.bin", headers: [(name: "Range", value: "bytes=\(a)-\(b)")])
            #expect(ranged.status == 206 && Self.same(ranged.body, Array(plaintext[a...b])), "bytes=\(a)-\(b)")
            #expect(ranged.head?.headers["Content-Range"] == "bytes \(a)-\(b)/\(plaintext.count)")
        }

        // The backend holds ciphertext: header + segment per part, version 2 multipart metadata.
        let stored = raw.send("GET", "/bucket/big.bin")
        let layout = ChunkLayout.default
        #expect(stored.body.count == parts.reduce(0) { $0 + 36 + layout.ciphertextLength(plaintextLength: $1.count) })
        #expect(stored.head?.headers["x-amz-meta-s3eg-layout"] == "multipart" && stored.head?.headers["x-amz-meta-s3eg-version"] == "2")
        let probe = Array(plaintext[(Self.partSize + 1000)..<(Self.partSize + 1032)])
        #expect(!stored.body.indices.dropLast(32).contains { stored.body[$0] == probe[0] && Array(stored.body[$0..<($0 + 32)]) == probe })
        // Listings show the plaintext size (parts are chunk multiples).
        let listing = gateway.send("GET", "/bucket?list-type=2&prefix=big")
        #expect(Self.text(listing, "Size") == String(plaintext.count))
    }

    @Test func partsThatAreNotChunkMultiplesReadBackExactly() throws {
        let size = Self.partSize + 1
        let parts = [Self.content(size, seed: 4), Self.content(size, seed: 5), Self.content(size - 7, seed: 6)]
        let uploadID = try create("odd.bin")
        var list: [(Int, String)] = []
        for (i, body) in parts.enumerated() {
            let answer = put("odd.bin", uploadID, i + 1, body)
            list.append((i + 1, try #require(answer.head?.headers["ETag"])))
        }
        #expect(complete("odd.bin", uploadID, list).status == 200)
        let plaintext = parts.flatMap { $0 }
        #expect(Self.same(gateway.send("GET", "/bucket/odd.bin").body, plaintext))
        #expect(gateway.send("HEAD", "/bucket/odd.bin").head?.contentLength == Int64(plaintext.count))
        let ranged = gateway.send("GET", "/bucket/odd.bin", headers: [(name: "Range", value: "bytes=\(size - 5)-\(2 * size + 5)")])
        #expect(Self.same(ranged.body, Array(plaintext[(size - 5)...(2 * size + 5)])))
    }

    /// A part's ETag comes from the verifying body's digests (on their worker thread for parts of a megabyte and more):
    /// the plaintext MD5 with or without a Content-MD5 (hashed once); a large part failing its Content-MD5 stores nothing.
    /// `?partNumber=N` reads part N's plaintext as S3 serves it (206, its Content-Range, the part count), for uniform
    /// parts and for parts the geometry walk finds; beyond the last part is `416 InvalidPartNumber`, and a part with a
    /// Range is refused. The backend never sees the part number (its parts hold ciphertext behind part headers).
    @Test(arguments: [[Self.partSize, Self.partSize, 300_001], [Self.partSize + 4097, Self.partSize - 123, 70_000]])
    func partNumberReadsServeThatPartsPlaintext(sizes: [Int]) throws {
        let key = "parts-\(sizes[0]).bin"
        let parts = sizes.enumerated().map { Self.content($1, seed: UInt64(40 + $0)) }
        let uploadID = try create(key)
        var list: [(Int, String)] = []
        for (i, body) in parts.enumerated() {
            list.append((i + 1, try #require(put(key, uploadID, i + 1, body).head?.headers["ETag"])))
        }
        let done = complete(key, uploadID, list)
        #expect(done.status == 200, "\(done.bodyText)")
        let objectETag = try #require(Self.text(done, "ETag"))
        let plaintext = parts.flatMap { $0 }
        var offset = 0
        for (i, part) in parts.enumerated() {
            let range = "bytes \(offset)-\(offset + part.count - 1)/\(plaintext.count)"
            let got = gateway.send("GET", "/bucket/\(key)?partNumber=\(i + 1)")
            #expect(got.status == 206 && Self.same(got.body, part), "part \(i + 1): \(got.status ?? 0)")
            #expect(got.head?.headers["Content-Range"] == range)
            #expect(got.head?.headers["x-amz-mp-parts-count"] == "3")
            #expect(got.head?.headers["ETag"] == objectETag)
            let head = gateway.send("HEAD", "/bucket/\(key)?partNumber=\(i + 1)")
            #expect(head.status == 206 && head.head?.contentLength == Int64(part.count) && head.body.isEmpty)
            #expect(head.head?.headers["Content-Range"] == range && head.head?.headers["x-amz-mp-parts-count"] == "3")
            offset += part.count
        }
        // GetObjectAttributes lists the same parts with their plaintext sizes, a page at a time.
        let attributes = gateway.send("GET", "/bucket/\(key)?attributes", headers: [
            (name: "x-amz-object-attributes", value: "ObjectParts,ObjectSize,ETag"), (name: "x-amz-max-parts", value: "2")])
        #expect(attributes.status == 200, "\(attributes.bodyText)")
        let document = try XMLTree.parse(attributes.body).root
        #expect(document.child("ObjectSize")?.text == String(plaintext.count))
        #expect("\"\(document.child("ETag")?.text ?? "")\"" == objectETag)
        let objectParts = try #require(document.child("ObjectParts"))
        #expect(objectParts.child("PartsCount")?.text == "3" && objectParts.child("IsTruncated")?.text == "true")
        #expect(objectParts.children.filter { $0.name == "Part" }.compactMap { $0.child("Size")?.text } == parts.prefix(2).map { String($0.count) })
        let rest = gateway.send("GET", "/bucket/\(key)?attributes", headers: [
            (name: "x-amz-object-attributes", value: "ObjectParts"), (name: "x-amz-part-number-marker", value: "2")])
        #expect(try XMLTree.parse(rest.body).root.child("ObjectParts")?.children.filter { $0.name == "Part" }
            .compactMap { $0.child("Size")?.text } == [String(parts[2].count)])
        let beyond = gateway.send("GET", "/bucket/\(key)?partNumber=4")
        #expect(beyond.status == 416 && Self.text(beyond, "Code") == "InvalidPartNumber")
        let both = gateway.send("GET", "/bucket/\(key)?partNumber=1", headers: [(name: "Range", value: "bytes=0-9")])
        #expect(both.status == 400 && Self.text(both, "Code") == "InvalidRequest")
        let zero = gateway.send("GET", "/bucket/\(key)?partNumber=0")
        #expect(zero.status == 400 && Self.text(zero, "Code") == "InvalidArgument")
    }

    @Test func partETagsWithAndWithoutContentMD5() throws {
        let uploadID = try create("md5.bin")
        let body = Self.content(Self.partSize, seed: 11)
        let md5 = Data(Digest.hash(.md5, body)).base64EncodedString()
        #expect(put("md5.bin", uploadID, 1, body).head?.headers["ETag"] == Self.md5ETag(body))
        #expect(put("md5.bin", uploadID, 2, body, headers: [(name: "Content-MD5", value: md5)]).head?.headers["ETag"] == Self.md5ETag(body))
        var tampered = body
        tampered[body.count - 10] ^= 1
        #expect(put("md5.bin", uploadID, 3, tampered, headers: [(name: "Content-MD5", value: md5)]).errorCode == "BadDigest")
        let backendID = try #require(ObjectEncryptor.backendUploadID(of: uploadID))
        let parts = raw.send("GET", "/bucket/md5.bin?uploadId=\(backendID)").bodyText
        #expect(parts.contains("<PartNumber>2</PartNumber>") && !parts.contains("<PartNumber>3</PartNumber>"))
    }

    /// A part verified by a flexible checksum (x-amz-checksum-crc32, the SDKs' default) and sent without Content-MD5 is
    /// not MD5-hashed: its ETag is the one ListParts shows for it (the backend's, visibly not an MD5), its checksum is
    /// echoed; a wrong CRC32 stores nothing; with a Content-MD5 too it is the plaintext MD5. The object completes and
    /// reads back.
    @Test func partsWithAFlexibleChecksumGetTheListedETag() throws {
        let uploadID = try create("crc.bin")
        let first = Self.content(Self.partSize, seed: 21), second = Self.content(1000, seed: 22)
        let crc = RunningChecksum.compute(.crc32, first).base64
        let answered = put("crc.bin", uploadID, 1, first, headers: [(name: "x-amz-checksum-crc32", value: crc)])
        #expect(answered.status == 200, "\(answered.bodyText)")
        #expect(answered.head?.headers["x-amz-checksum-crc32"] == crc)
        let etag = try #require(answered.head?.headers["ETag"])
        #expect(etag.hasSuffix("-1\"") && etag != Self.md5ETag(first))

        var tampered = first
        tampered[first.count - 10] ^= 1
        #expect(put("crc.bin", uploadID, 2, tampered, headers: [(name: "x-amz-checksum-crc32", value: crc)]).errorCode == "BadDigest")
        let backendID = try #require(ObjectEncryptor.backendUploadID(of: uploadID))
        #expect(!raw.send("GET", "/bucket/crc.bin?uploadId=\(backendID)").bodyText.contains("<PartNumber>2</PartNumber>"))

        let md5 = Data(Digest.hash(.md5, second)).base64EncodedString()
        let both = put("crc.bin", uploadID, 2, second, headers: [(name: "x-amz-checksum-crc32", value: RunningChecksum.compute(.crc32, second).base64),
                                                                   (name: "Content-MD5", value: md5)])
        #expect(both.head?.headers["ETag"] == Self.md5ETag(second))

        let listed = gateway.send("GET", "/bucket/crc.bin?uploadId=\(uploadID)")
        let listedETags = try XMLTree.parse(listed.body).root.children.filter { $0.name == "Part" }.map { $0.child("ETag")?.text }
        #expect(listedETags.first == etag)
        #expect(complete("crc.bin", uploadID, [(1, etag), (2, Self.md5ETag(second))]).status == 200)
        #expect(Self.same(gateway.send("GET", "/bucket/crc.bin").body, first + second))
    }

    @Test func badBodiesUnknownPartsAndForeignUploadIDsStoreNothing() throws {
        let uploadID = try create("guarded.bin")
        let body = Self.content(100_000, seed: 7)
        let wrongMD5 = Data(Digest.hash(.md5, Array("other".utf8))).base64EncodedString()
        let bad = put("guarded.bin", uploadID, 1, body, headers: [(name: "Content-MD5", value: wrongMD5)])
        #expect(bad.errorCode == "BadDigest")
        let backendID = try #require(ObjectEncryptor.backendUploadID(of: uploadID))
        let parts = raw.send("GET", "/bucket/guarded.bin?uploadId=\(backendID)")
        #expect(!parts.bodyText.contains("<PartNumber>"), "a part that failed its digest must not be stored")
        let wrongHash = put("guarded.bin", uploadID, 1, body) // signed hash of the body, but see below: a claimed hash
        #expect(wrongHash.status == 200)
        let claimed = gateway.send("PUT", "/bucket/guarded.bin?partNumber=2&uploadId=\(uploadID)", body: body,
                                   payload: .claimed(Encoding.hex(Digest.hash(.sha256, Array("x".utf8)))))
        #expect(claimed.errorCode == "XAmzContentSHA256Mismatch")
        #expect(!raw.send("GET", "/bucket/guarded.bin?uploadId=\(backendID)").bodyText.contains("<PartNumber>2</PartNumber>"))

        // Upload ids: another key, the backend's own id, garbage.
        #expect(put("elsewhere.bin", uploadID, 1, body).errorCode == "NoSuchUpload")
        #expect(put("guarded.bin", backendID, 1, body).errorCode == "NoSuchUpload")
        #expect(put("guarded.bin", "s3eg2.AAAA", 1, body).errorCode == "NoSuchUpload")
        #expect(put("guarded.bin", uploadID, 0, body).errorCode == "InvalidArgument")

        // Complete with a part that was never uploaded, with parts out of order, with nothing.
        let etag = try #require(wrongHash.head?.headers["ETag"])
        #expect(complete("guarded.bin", uploadID, [(1, etag), (9, etag)]).errorCode == "InvalidPart")
        #expect(complete("guarded.bin", uploadID, [(2, etag), (1, etag)]).errorCode == "InvalidPartOrder")
        #expect(gateway.send("POST", "/bucket/guarded.bin?uploadId=\(uploadID)", body: Array("<CompleteMultipartUpload/>".utf8)).errorCode == "MalformedXML")
        #expect(gateway.send("POST", "/bucket/guarded.bin?uploadId=\(uploadID)", body: Array("<x>".utf8)).errorCode == "MalformedXML")
        #expect(raw.send("HEAD", "/bucket/guarded.bin").status == 404, "nothing was completed")
        // A part uploaded straight to the backend (not sealed by a gateway) is refused at Complete.
        let planted = raw.send("PUT", "/bucket/guarded.bin?partNumber=3&uploadId=\(backendID)", body: Array(repeating: 7, count: 40))
        #expect(planted.status == 200)
        #expect(complete("guarded.bin", uploadID, [(1, etag), (3, "\"x\"")]).errorCode == "InvalidPart")
        // The one good part completes.
        #expect(complete("guarded.bin", uploadID, [(1, etag)]).status == 200)
        #expect(Self.same(gateway.send("GET", "/bucket/guarded.bin").body, body))
    }

    @Test func abortAndListUploadsTranslateIDs() throws {
        let uploadID = try create("aborted.bin")
        #expect(put("aborted.bin", uploadID, 1, [1, 2, 3]).status == 200)
        let backendID = try #require(ObjectEncryptor.backendUploadID(of: uploadID))
        let uploads = gateway.send("GET", "/bucket?uploads")
        #expect(uploads.status == 200 && uploads.bodyText.contains(backendID))
        let aborted = gateway.send("DELETE", "/bucket/aborted.bin?uploadId=\(uploadID)")
        #expect(aborted.status == 204, "\(aborted.bodyText)")
        #expect(!raw.send("GET", "/bucket?uploads").bodyText.contains(backendID))
        // (moto answers a part for an aborted upload with 500 rather than NoSuchUpload; it fails either way.)
        #expect((put("aborted.bin", uploadID, 2, [4]).status ?? 0) >= 400)
        #expect(gateway.send("GET", "/bucket/aborted.bin?uploadId=\(uploadID)").status == 404)
    }

    @Test func uploadPartCopyDecryptsAndReseals() throws {
        // Sources: a single-part encrypted object, a plain object, a multipart encrypted object.
        let single = Self.content(6 * Self.mib + 12345, seed: 10)
        #expect(gateway.send("PUT", "/bucket/src-single", body: single).status == 200)
        let plain = Self.content(2 * Self.mib + 1, seed: 11)
        #expect(raw.send("PUT", "/other/src-plain", body: plain).status == 200)
        let mpParts = [Self.content(Self.partSize, seed: 12), Self.content(Self.mib, seed: 13)]
        let mpID = try create("src-multi")
        let mpETags = mpParts.enumerated().map { put("src-multi", mpID, $0.offset + 1, $0.element).head?.headers["ETag"] ?? "" }
        #expect(complete("src-multi", mpID, [(1, mpETags[0]), (2, mpETags[1])]).status == 200)
        let multi = mpParts.flatMap { $0 }

        let uploadID = try create("copied.bin")
        // Every part but the last must hold 5 MiB (S3's rule, which moto enforces on the stored sizes).
        let pieces: [(String, ClosedRange<Int>?, [UInt8])] = [
            ("/bucket/src-multi", (Self.mib / 2)...(multi.count - 1), multi),     // across the source's two parts
            ("/bucket/src-single", 7...(Self.partSize + 100), single),
            ("/other/src-plain", nil, plain),
        ]
        var list: [(Int, String)] = []
        var expected: [UInt8] = []
        for (i, (source, range, content)) in pieces.enumerated() {
            var headers = [(name: "x-amz-copy-source", value: source)]
            if let range { headers.append((name: "x-amz-copy-source-range", value: "bytes=\(range.lowerBound)-\(range.upperBound)")) }
            let copied = gateway.send("PUT", "/bucket/copied.bin?partNumber=\(i + 1)&uploadId=\(uploadID)", headers: headers)
            #expect(copied.status == 200, "\(source): \(copied.bodyText)")
            let bytes = range.map { Array(content[$0]) } ?? content
            #expect(Self.text(copied, "ETag") == Self.md5ETag(bytes))
            list.append((i + 1, try #require(Self.text(copied, "ETag"))))
            expected += bytes
        }
        // A range outside the source, and a source condition that fails.
        let outside = gateway.send("PUT", "/bucket/copied.bin?partNumber=9&uploadId=\(uploadID)",
                                   headers: [(name: "x-amz-copy-source", value: "/other/src-plain"),
                                             (name: "x-amz-copy-source-range", value: "bytes=0-\(plain.count)")])
        #expect(outside.errorCode == "InvalidArgument")
        let conditional = gateway.send("PUT", "/bucket/copied.bin?partNumber=9&uploadId=\(uploadID)",
                                       headers: [(name: "x-amz-copy-source", value: "/bucket/src-single"),
                                                 (name: "x-amz-copy-source-if-match", value: "\"0123\"")])
        #expect(conditional.errorCode == "PreconditionFailed")
        // A missing source: the backend's own error.
        for (source, code) in [("/bucket/no-such-source", "NoSuchKey"), ("/no-such-bucket/src", "NoSuchBucket")] {
            let missing = gateway.send("PUT", "/bucket/copied.bin?partNumber=9&uploadId=\(uploadID)",
                                       headers: [(name: "x-amz-copy-source", value: source)])
            #expect(missing.errorCode == code, "\(source): \(missing.bodyText)")
        }
        // ENCRYPTION_ALLOW_PLAINTEXT_READS=false: a plain source is refused like a plain GET (the upload id stays valid).
        let strict = try HandlerHarness(backendEndpoint: moto.endpoint, encryptor: Self.encryptor, encryptionObserver: events,
                                        allowPlaintextReads: false)
        let refused = strict.send("PUT", "/bucket/copied.bin?partNumber=9&uploadId=\(uploadID)",
                                  headers: [(name: "x-amz-copy-source", value: "/other/src-plain")])
        #expect(refused.errorCode == "AccessDenied")
        let encryptedSource = strict.send("PUT", "/bucket/copied.bin?partNumber=8&uploadId=\(uploadID)",
                                          headers: [(name: "x-amz-copy-source", value: "/bucket/src-single")])
        #expect(encryptedSource.status == 200, "\(encryptedSource.bodyText)")
        let done = complete("copied.bin", uploadID, list)
        #expect(done.status == 200, "\(done.bodyText)")
        #expect(Self.same(gateway.send("GET", "/bucket/copied.bin").body, expected))
        #expect(events.tamperCount == 0)
    }

    @Test func aTamperedCopySourceStoresNoPart() throws {
        let content = Self.content(2 * Self.mib, seed: 20)
        #expect(gateway.send("PUT", "/bucket/victim", body: content).status == 200)
        let stored = raw.send("GET", "/bucket/victim")
        var body = stored.body
        body[Self.mib + 5] ^= 1
        var headers = (stored.head?.headers.filter { $0.name.lowercased().hasPrefix("x-amz-meta-") }) ?? []
        headers.append((name: "Content-Type", value: "application/octet-stream"))
        #expect(raw.send("PUT", "/bucket/victim", body: body, headers: headers).status == 200)
        let uploadID = try create("from-victim")
        let copied = gateway.send("PUT", "/bucket/from-victim?partNumber=1&uploadId=\(uploadID)",
                                  headers: [(name: "x-amz-copy-source", value: "/bucket/victim")])
        #expect(copied.status == 500)
        let backendID = try #require(ObjectEncryptor.backendUploadID(of: uploadID))
        #expect(!raw.send("GET", "/bucket/from-victim?uploadId=\(backendID)").bodyText.contains("<PartNumber>"))
        #expect(events.tamperCount == 1)
    }
}
