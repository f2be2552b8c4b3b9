import Testing
@testable import Proxy
@testable import Shared

/// The client's headers the gateway's own reads of an object carry (`ObjectAccessHeaders`).
@Suite struct ObjectAccessHeadersTests {
    static let client = HTTPFields([
        ("Host", "h"), ("Authorization", "a"), ("Range", "bytes=0-1"), ("If-Match", "\"e\""), ("x-amz-meta-k", "v"),
        ("X-Amz-Server-Side-Encryption-Customer-Algorithm", "AES256"), ("x-amz-server-side-encryption-customer-key", "K"),
        ("x-amz-server-side-encryption-customer-key-md5", "M"),
        ("x-amz-copy-source-server-side-encryption-customer-algorithm", "AES256"),
        ("x-amz-copy-source-server-side-encryption-customer-key", "SK"), ("x-amz-copy-source-server-side-encryption-customer-key-MD5", "SM"),
        ("x-amz-request-payer", "requester"), ("x-amz-expected-bucket-owner", "111"), ("x-amz-source-expected-bucket-owner", "222"),
        ("x-amz-server-side-encryption", "aws:kms"),
    ].map { (name: $0.0, value: $0.1) })

    static func pairs(_ fields: HTTPFields) -> [String: String] {
        Dictionary(uniqueKeysWithValues: fields.map { ($0.name.lowercased(), $0.value) })
    }

    @Test func theObjectsOwnKeyPayerAndOwner() {
        #expect(Self.pairs(ObjectAccessHeaders.object(Self.client)) == [
            "x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": "K",
            "x-amz-server-side-encryption-customer-key-md5": "M", "x-amz-request-payer": "requester",
            "x-amz-expected-bucket-owner": "111",
        ])
    }

    /// A copy's source is read with its own key and owner, sent under the names a read of the source uses.
    @Test func theCopySourcesKeyAndOwnerUnderThePlainNames() {
        #expect(Self.pairs(ObjectAccessHeaders.copySource(Self.client)) == [
            "x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": "SK",
            "x-amz-server-side-encryption-customer-key-md5": "SM", "x-amz-request-payer": "requester",
            "x-amz-expected-bucket-owner": "222",
        ])
    }

    /// The self-copy reads the object it just wrote with the key it was written with.
    @Test func theUploadsKeyAsTheSelfCopysSource() {
        #expect(Self.pairs(ObjectAccessHeaders.selfCopySource(Self.client)) == [
            "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-copy-source-server-side-encryption-customer-key": "K",
            "x-amz-copy-source-server-side-encryption-customer-key-md5": "M",
        ])
    }

    @Test func nothingWithoutThem() {
        let plain = HTTPFields([(name: "Host", value: "h"), (name: "Authorization", value: "a")])
        #expect(ObjectAccessHeaders.object(plain).count == 0)
        #expect(ObjectAccessHeaders.copySource(plain).count == 0)
        #expect(ObjectAccessHeaders.selfCopySource(plain).count == 0)
    }
}
