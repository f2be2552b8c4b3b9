import Shared
import Testing
@testable import Proxy

/// The classification table: the allow-list an encrypting gateway dispatches on, and the query it forwards.
@Suite struct S3OperationTests {
    static func classify(_ method: String, _ path: String, _ query: String, _ headers: [(String, String)] = []) throws
        -> (operation: S3Operation, forwarded: String) {
        let address = try S3RequestAddress.resolve(rawPath: path, host: "localhost", baseDomains: [])
        let parsed = try #require(QueryString.parse(query))
        let operation = S3Operation.classify(method: method, address: address, query: parsed,
                                             headers: HTTPFields(headers.map { (name: $0.0, value: $0.1) }))
        return (operation, QueryString.forURL(operation.understoodParameters(parsed)))
    }

    @Test(arguments: [
        // Service and buckets.
        ("GET", "/", "", [], "ListBuckets", ""),
        ("GET", "/", "max-buckets=5&x-id=ListBuckets", [], "ListBuckets", "max-buckets=5"),
        ("PUT", "/", "", [], "MethodNotAllowed", ""),
        ("PUT", "/bucket", "", [], "CreateBucket", ""),
        ("HEAD", "/bucket/", "", [], "HeadBucket", ""),
        ("DELETE", "/bucket", "", [], "DeleteBucket", ""),
        ("POST", "/bucket", "", [], "PostObject", ""),
        ("GET", "/bucket", "list-type=2&prefix=a&x-id=ListObjectsV2&foo=bar", [], "ListObjectsV2", "list-type=2&prefix=a"),
        ("GET", "/bucket", "list-type=3", [], "Invalid", ""),
        ("GET", "/bucket/", "prefix=&delimiter=/&marker=m", [], "ListObjects", "delimiter=%2F&marker=m&prefix="),
        ("GET", "/bucket", "versions&prefix=p&key-marker=k", [], "ListObjectVersions", "key-marker=k&prefix=p&versions"),
        ("GET", "/bucket", "uploads&max-uploads=3", [], "ListMultipartUploads", "max-uploads=3&uploads"),
        ("POST", "/bucket", "delete", [], "DeleteObjects", "delete"),
        ("GET", "/bucket", "delete", [], "MethodNotAllowed", ""),
        ("GET", "/bucket", "versioning", [], "GetBucketVersioning", "versioning"),
        ("PUT", "/bucket", "versioning&foo=1", [], "PutBucketVersioning", "versioning"),
        ("DELETE", "/bucket", "versioning", [], "MethodNotAllowed", ""),
        ("GET", "/bucket", "location", [], "GetBucketLocation", "location"),
        ("PUT", "/bucket", "policy", [], "PutBucketPolicy", "policy"),
        ("DELETE", "/bucket", "lifecycle", [], "DeleteBucketLifecycle", "lifecycle"),
        ("GET", "/bucket", "analytics", [], "ListBucketAnalyticsConfigurations", "analytics"),
        ("GET", "/bucket", "analytics&id=a1", [], "GetBucketAnalyticsConfiguration", "analytics&id=a1"),
        ("GET", "/bucket", "object-lock", [], "GetObjectLockConfiguration", "object-lock"),
        ("GET", "/bucket", "restore", [], "Unknown", ""),          // an object sub-resource on a bucket
        ("GET", "/bucket", "session", [], "Unknown", ""),
        ("GET", "/bucket", "uploadId=1", [], "ListObjects", ""),   // a parameter with a value that means nothing here
        ("GET", "/bucket", "versioning&policy", [], "Invalid", ""),
        // Objects: the encryption path.
        ("GET", "/bucket/k", "", [], "GetObject", ""),
        ("GET", "/bucket/k", "versionId=3&response-content-type=x&x-id=GetObject", [], "GetObject", "response-content-type=x&versionId=3"),
        ("GET", "/bucket/k", "foo=bar", [], "GetObject", ""),
        ("GET", "/bucket/k", "partNumber=1", [], "GetObject", "partNumber=1"),
        ("HEAD", "/bucket/k", "partNumber=1&foo=bar", [], "HeadObject", "partNumber=1"),
        ("PUT", "/bucket/k", "", [], "PutObject", ""),
        ("PUT", "/bucket/k", "foo=bar", [], "PutObject", ""),
        ("PUT", "/bucket/k", "x-id=PutObject", [], "PutObject", ""),
        ("PUT", "/bucket/k", "versionId=3", [], "PutObject", ""),
        ("PUT", "/bucket/k", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab", [], "PutObject", ""),
        ("PUT", "/bucket/k", "", [("x-amz-copy-source", "/a/b")], "CopyObject", ""),
        ("DELETE", "/bucket/k", "versionId=3", [], "DeleteObject", "versionId=3"),
        // Objects: metadata sub-resources (forwarded).
        ("GET", "/bucket/k", "tagging", [], "GetObjectTagging", "tagging"),
        ("PUT", "/bucket/k", "tagging&versionId=2", [], "PutObjectTagging", "tagging&versionId=2"),
        ("DELETE", "/bucket/k", "tagging", [], "DeleteObjectTagging", "tagging"),
        ("PUT", "/bucket/k", "acl", [], "PutObjectAcl", "acl"),
        ("PUT", "/bucket/k", "retention&foo=1", [], "PutObjectRetention", "retention"),
        ("GET", "/bucket/k", "legal-hold", [], "GetObjectLegalHold", "legal-hold"),
        ("POST", "/bucket/k", "restore&versionId=v", [], "RestoreObject", "restore&versionId=v"),
        ("HEAD", "/bucket/k", "acl", [], "MethodNotAllowed", ""),
        // Multipart.
        ("POST", "/bucket/k", "uploads", [], "CreateMultipartUpload", "uploads"),
        ("PUT", "/bucket/k", "partNumber=2&uploadId=u", [], "UploadPart", "partNumber=2&uploadId=u"),
        ("PUT", "/bucket/k", "partNumber=2&uploadId=u", [("x-amz-copy-source", "/a/b")], "UploadPartCopy", "partNumber=2&uploadId=u"),
        ("POST", "/bucket/k", "uploadId=u", [], "CompleteMultipartUpload", "uploadId=u"),
        ("DELETE", "/bucket/k", "uploadId=u", [], "AbortMultipartUpload", "uploadId=u"),
        ("GET", "/bucket/k", "uploadId=u&max-parts=5&foo=1", [], "ListParts", "max-parts=5&uploadId=u"),
        // Answered by the gateway from a HEAD (the backend's answer describes the ciphertext).
        ("GET", "/bucket/k", "attributes&versionId=v&foo=1", [], "GetObjectAttributes", "attributes&versionId=v"),
        ("PUT", "/bucket/k", "attributes", [], "MethodNotAllowed", ""),
        // Refused: they move object bytes around the encryption path.
        ("GET", "/bucket/k", "torrent", [], "GetObjectTorrent", ""),
        ("POST", "/bucket/k", "select&select-type=2", [], "SelectObjectContent", ""),
        ("POST", "/bucket/WriteGetObjectResponse", "", [("x-amz-request-route", "r")], "WriteGetObjectResponse", ""),
        // Unknown, ambiguous or malformed: refused.
        ("PUT", "/bucket/k", "foo", [], "Unknown", ""),
        ("GET", "/bucket/k", "foo=", [], "Unknown", ""),
        ("PUT", "/bucket/k", "renameObject", [], "Unknown", ""),
        ("GET", "/bucket/k", "versioning", [], "Unknown", ""),  // a bucket sub-resource on an object
        ("GET", "/bucket/k", "versions", [], "Unknown", ""),
        ("PUT", "/bucket/k", "uploadId=u", [], "Invalid", ""),
        ("PUT", "/bucket/k", "partNumber=1", [], "Invalid", ""),
        ("PUT", "/bucket/k", "UploadId=u&partNumber=1", [], "Invalid", ""),
        ("PUT", "/bucket/k", "uploadid=u&partnumber=1", [], "Invalid", ""),
        ("GET", "/bucket/k", "VersionId=1", [], "Invalid", ""),
        ("PUT", "/bucket/k", "Tagging", [], "Invalid", ""),
        ("GET", "/bucket/k", "acl&tagging", [], "Invalid", ""),
        ("POST", "/bucket/k", "uploads&uploadId=u", [], "Invalid", ""),
        ("POST", "/bucket/k", "", [], "MethodNotAllowed", ""),
        ("PATCH", "/bucket/k", "", [], "MethodNotAllowed", ""),
    ] as [(String, String, String, [(String, String)], String, String)])
    func classifies(method: String, path: String, query: String, headers: [(String, String)], name: String, forwarded: String) throws {
        let (operation, sent) = try Self.classify(method, path, query, headers)
        #expect(operation.name == name, "\(method) \(path)?\(query)")
        #expect(sent == forwarded, "\(method) \(path)?\(query)")
    }

    @Test func refusalsNameTheOperation() throws {
        guard case .unknown(let detail) = try Self.classify("PUT", "/bucket/k", "foo").operation else {
            Issue.record("not unknown")
            return
        }
        #expect(detail == "PUT /bucket/key?foo")
        guard case .invalid(let error) = try Self.classify("PUT", "/bucket/k", "UploadId=u&partNumber=1").operation else {
            Issue.record("not invalid")
            return
        }
        #expect(error.code == "InvalidArgument")
        #expect(error.message.contains("'UploadId' is not 'uploadId'"))
        #expect(RefusedOperation.selectObjectContent.reason.contains("SelectObjectContent"))
    }

    /// Random queries over a vocabulary of real, ignored, unknown and mis-cased names: whatever the
    /// classification, the backend never sees a name the gateway did not understand for that operation,
    /// object bytes never take the forwarding path, and metric names stay in a bounded set.
    @Test func randomQueriesNeverForwardWhatWasNotUnderstood() throws {
        let vocabulary = ["uploadId=u", "UploadId=u", "partNumber=1", "PartNumber=2", "uploads", "versionId=v", "tagging", "acl",
                          "torrent", "select", "select-type=2", "x-id=PutObject", "foo=bar", "foo", "versioning", "versions",
                          "list-type=2", "prefix=p", "X-Amz-Signature=s", "delete", "restore", "retention", "attributes",
                          "response-content-type=t", "id=1", "analytics", "uploadid=u", "Signature=x"]
        var rng = SplitMix64(seed: 7)
        var names = Set<String>()
        for _ in 0..<4000 {
            let count = Int.random(in: 0...4, using: &rng)
            let query = (0..<count).map { _ in vocabulary[Int.random(in: 0..<vocabulary.count, using: &rng)] }.joined(separator: "&")
            let method = ["GET", "HEAD", "PUT", "POST", "DELETE"][Int.random(in: 0..<5, using: &rng)]
            let path = Bool.random(using: &rng) ? "/bucket" : "/bucket/key"
            let copy: [(String, String)] = Bool.random(using: &rng) ? [("x-amz-copy-source", "/b/k")] : []
            let (operation, sent) = try Self.classify(method, path, query, copy)
            names.insert(operation.name)
            let forwardedNames = Set((QueryString.parse(sent) ?? []).map(\.name))
            #expect(forwardedNames.isSubset(of: S3OperationTable.knownNames), "\(method) \(path)?\(query) → \(sent)")
            #expect(!forwardedNames.contains { S3OperationTable.isIgnored($0) })
            if case .metadata = operation {
                #expect(!operation.movesObjectData)
            }
            if [S3Operation.putObject, .getObject, .headObject, .copyObject].contains(operation) {
                // The plain object operations never carry a sub-resource to the backend.
                #expect(forwardedNames.isSubset(of: S3OperationTable.readParameters), "\(method) \(path)?\(query)")
            }
        }
        #expect(names.count < 60)
        #expect(!names.contains { $0.contains("foo") })
    }
}
