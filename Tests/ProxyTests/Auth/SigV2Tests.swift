import Foundation
import Shared
import Testing
@testable import Proxy

/// Known-answer vectors from the S3 "Signing and Authenticating REST Requests" (Signature Version 2) examples:
/// access key AKIAIOSFODNN7EXAMPLE, secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, bucket johnsmith.
@Suite struct SigV2KnownAnswerTests {
    static let accessKey = "AKIAIOSFODNN7EXAMPLE"
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    let authenticator = RequestAuthenticator(credentials: StaticCredentials(accessKey: accessKey, secretKey: secret), regions: ["us-east-1"])

    func verify(_ method: String, bucket: String = "johnsmith", path: String, query: String? = nil, _ headers: HTTPFields,
                signature: String, date: String) throws -> VerifiedRequest {
        var fields = headers
        fields.add("Authorization", "AWS \(Self.accessKey):\(signature)")
        return try authenticator.authenticate(method: method, rawPath: path, rawQuery: query, headers: fields,
                                              virtualHostBucket: bucket, now: SigV2.parseDate(date)! + 30)
    }

    @Test func objectGet() throws {
        let v = try verify("GET", path: "/photos/puppy.jpg", ["Host": "johnsmith.s3.amazonaws.com", "Date": "Tue, 27 Mar 2007 19:36:42 +0000"],
                           signature: "bWq2s1WEIj+Ydj0vQ697zp+IXMU=", date: "Tue, 27 Mar 2007 19:36:42 +0000")
        #expect(v.scheme == .sigV2Header)
        #expect(v.accessKey == Self.accessKey)
        #expect(v.payload == .unsigned)
    }

    @Test func objectPut() throws {
        _ = try verify("PUT", path: "/photos/puppy.jpg",
                       ["Content-Type": "image/jpeg", "Content-Length": "94328", "Host": "johnsmith.s3.amazonaws.com",
                        "Date": "Tue, 27 Mar 2007 21:15:45 +0000"],
                       signature: "MyyxeRY7whkBe+bq8fHCL/2kKUg=", date: "Tue, 27 Mar 2007 21:15:45 +0000")
    }

    @Test func listAndACL() throws {
        // Listing parameters are not sub-resources; ?acl is.
        _ = try verify("GET", path: "/", query: "prefix=photos&max-keys=50&marker=puppy",
                       ["User-Agent": "Mozilla/5.0", "Host": "johnsmith.s3.amazonaws.com", "Date": "Tue, 27 Mar 2007 19:42:41 +0000"],
                       signature: "htDYFYduRNen8P9ZfE/s9SuKy0U=", date: "Tue, 27 Mar 2007 19:42:41 +0000")
        _ = try verify("GET", path: "/", query: "acl", ["Host": "johnsmith.s3.amazonaws.com", "Date": "Tue, 27 Mar 2007 19:44:46 +0000"],
                       signature: "c2WLPFtWHVgbEmeEG93a4cG37dM=", date: "Tue, 27 Mar 2007 19:44:46 +0000")
    }

    @Test func deleteWithXAmzDate() throws {
        // Path style, with x-amz-date alongside Date (the documented example).
        var fields: HTTPFields = ["Host": "s3.amazonaws.com", "Date": "Tue, 27 Mar 2007 21:20:27 +0000",
                                  "x-amz-date": "Tue, 27 Mar 2007 21:20:26 +0000"]
        fields.add("Authorization", "AWS \(Self.accessKey):lx3byBScXR6KzyMaifNkardMwNk=")
        _ = try authenticator.authenticate(method: "DELETE", rawPath: "/johnsmith/photos/puppy.jpg", rawQuery: nil, headers: fields,
                                           now: SigV2.parseDate("Tue, 27 Mar 2007 21:20:26 +0000")!)
    }

    @Test func uploadWithAmzHeaders() throws {
        // Repeated x-amz-meta-reviewedby headers are joined; the bucket is a CNAME (static.johnsmith.net).
        var fields: HTTPFields = [
            "Host": "static.johnsmith.net:8080", "Date": "Tue, 27 Mar 2007 21:06:08 +0000", "x-amz-acl": "public-read",
            "content-type": "application/x-download", "Content-MD5": "4gJE4saaMU4BqNR0kLY+lw==",
            "X-Amz-Meta-ReviewedBy": "joe@johnsmith.net", "X-Amz-Meta-FileChecksum": "0x02661779",
            "X-Amz-Meta-ChecksumAlgorithm": "crc32", "Content-Disposition": "attachment; filename=database.dat",
            "Content-Encoding": "gzip", "Content-Length": "5913339",
        ]
        fields.add("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net")
        _ = try verify("PUT", bucket: "static.johnsmith.net", path: "/db-backup.dat.gz", fields,
                       signature: "ilyl83RwaSoYIEdixDQcA4OnAnc=", date: "Tue, 27 Mar 2007 21:06:08 +0000")
    }

    @Test func presignedQueryString() throws {
        let query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
        let v = try authenticator.authenticate(method: "GET", rawPath: "/photos/puppy.jpg", rawQuery: query,
                                               headers: ["Host": "johnsmith.s3.amazonaws.com"], virtualHostBucket: "johnsmith",
                                               now: 1_175_139_620)
        #expect(v.scheme == .sigV2Query)
        #expect(s3ErrorCode { _ = try authenticator.authenticate(method: "GET", rawPath: "/photos/puppy.jpg", rawQuery: query,
                                                                 headers: [:], virtualHostBucket: "johnsmith", now: 1_175_139_621) }
                == "AccessDenied")
        // Another object, or another method, with the same signature.
        #expect(s3ErrorCode { _ = try authenticator.authenticate(method: "GET", rawPath: "/photos/kitten.jpg", rawQuery: query,
                                                                 headers: [:], virtualHostBucket: "johnsmith", now: 1_175_139_000) }
                == "SignatureDoesNotMatch")
        #expect(s3ErrorCode { _ = try authenticator.authenticate(method: "DELETE", rawPath: "/photos/puppy.jpg", rawQuery: query,
                                                                 headers: [:], virtualHostBucket: "johnsmith", now: 1_175_139_000) }
                == "SignatureDoesNotMatch")
        // A later expiry than the one signed.
        let later = query.replacingOccurrences(of: "1175139620", with: "1175139999")
        #expect(s3ErrorCode { _ = try authenticator.authenticate(method: "GET", rawPath: "/photos/puppy.jpg", rawQuery: later,
                                                                 headers: [:], virtualHostBucket: "johnsmith", now: 1_175_139_000) }
                == "SignatureDoesNotMatch")
    }

    @Test func tamperingAndSkew() {
        func code(_ fields: HTTPFields, path: String = "/photos/puppy.jpg", now: Int64? = nil) -> String? {
            var f = fields
            f.add("Authorization", "AWS \(Self.accessKey):bWq2s1WEIj+Ydj0vQ697zp+IXMU=")
            return s3ErrorCode { _ = try authenticator.authenticate(method: "GET", rawPath: path, rawQuery: nil, headers: f,
                                                                    virtualHostBucket: "johnsmith",
                                                                    now: now ?? SigV2.parseDate("Tue, 27 Mar 2007 19:36:42 +0000")!) }
        }
        let good: HTTPFields = ["Date": "Tue, 27 Mar 2007 19:36:42 +0000"]
        #expect(code(good) == nil)
        #expect(code(good, path: "/photos/puppy.png") == "SignatureDoesNotMatch")
        #expect(code(["Date": "Tue, 27 Mar 2007 19:36:43 +0000"], now: SigV2.parseDate("Tue, 27 Mar 2007 19:36:42 +0000")!) == "SignatureDoesNotMatch")
        #expect(code(good, now: SigV2.parseDate("Tue, 27 Mar 2007 19:52:43 +0000")!) == "RequestTimeTooSkewed")
        #expect(code(["Date": "yesterday"]) == "AccessDenied")
        var unknown: HTTPFields = good
        unknown.add("Authorization", "AWS OTHERKEY:bWq2s1WEIj+Ydj0vQ697zp+IXMU=")
        #expect(s3ErrorCode { _ = try authenticator.authenticate(method: "GET", rawPath: "/photos/puppy.jpg", rawQuery: nil, headers: unknown,
                                                                 virtualHostBucket: "johnsmith", now: SigV2.parseDate("Tue, 27 Mar 2007 19:36:42 +0000")!) }
                == "InvalidAccessKeyId")
    }

    @Test func canonicalResourceSubresources() {
        #expect(SigV2.canonicalResource(rawPath: "/b/k", rawQuery: "uploadId=a%2Bb&partNumber=2&x-id=PutObject", virtualHostBucket: nil,
                                        decodedValues: true) == "/b/k?partNumber=2&uploadId=a+b")
        #expect(SigV2.canonicalResource(rawPath: "/b/k", rawQuery: "uploadId=a%2Bb", virtualHostBucket: nil, decodedValues: false)
                == "/b/k?uploadId=a%2Bb")
        #expect(SigV2.canonicalResource(rawPath: "/k", rawQuery: "uploads", virtualHostBucket: "b", decodedValues: true) == "/b/k?uploads")
        #expect(SigV2.canonicalResource(rawPath: "/b", rawQuery: "tagging=&versionId=3", virtualHostBucket: nil, decodedValues: true)
                == "/b?tagging=&versionId=3")
        #expect(SigV2.parseDate("Tue, 27 Mar 2007 19:36:42 GMT") == SigV2.parseDate("Tue, 27 Mar 2007 19:36:42 +0000"))
    }
}

/// The SigV4 presigned-URL example of the S3 documentation ("Authenticating Requests: Using Query Parameters").
@Suite struct SigV4PresignedTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let t20130524: Int64 = 1_369_353_600
    static let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    let authenticator = RequestAuthenticator(credentials: StaticCredentials(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: secret),
                                             regions: ["us-east-1"])

    func code(_ query: String = query, method: String = "GET", path: String = "/test.txt", now: Int64 = t20130524 + 3600,
              headers: HTTPFields = ["Host": "examplebucket.s3.amazonaws.com"]) -> String? {
        s3ErrorCode { _ = try authenticator.authenticate(method: method, rawPath: path, rawQuery: query, headers: headers, now: now) }
    }

    @Test func documentedExample() throws {
        let v = try authenticator.authenticate(method: "GET", rawPath: "/test.txt", rawQuery: Self.query,
                                               headers: ["Host": "examplebucket.s3.amazonaws.com"], now: Self.t20130524 + 86_400)
        #expect(v.scheme == .sigV4Query)
        #expect(v.payload == .unsigned)
        #expect(AuthScheme.sigV4Query.queryParameters.contains("X-Amz-Signature"))
    }

    @Test func expiryAndTampering() {
        #expect(code(now: Self.t20130524 + 86_401) == "AccessDenied")                      // expired
        #expect(code(now: Self.t20130524 - 16 * 60) == "AccessDenied")                     // not valid yet
        #expect(code(Self.query.replacingOccurrences(of: "86400", with: "86401")) == "SignatureDoesNotMatch")
        #expect(code(Self.query.replacingOccurrences(of: "86400", with: "604801")) == "AuthorizationQueryParametersError")
        #expect(code(Self.query.replacingOccurrences(of: "86400", with: "0")) == "AuthorizationQueryParametersError")
        #expect(code(Self.query + "&response-content-type=text%2Fhtml") == "SignatureDoesNotMatch")  // an added parameter
        #expect(code(path: "/other.txt") == "SignatureDoesNotMatch")
        #expect(code(method: "PUT") == "SignatureDoesNotMatch")
        #expect(code(headers: ["Host": "evil.example.com"]) == "SignatureDoesNotMatch")
        #expect(code(Self.query.replacingOccurrences(of: "us-east-1", with: "eu-west-1")) == "AuthorizationQueryParametersError")
        #expect(code(Self.query.replacingOccurrences(of: "X-Amz-Date=20130524T000000Z&", with: "")) == "AuthorizationQueryParametersError")
        #expect(code(Self.query + "&X-Amz-Signature=aa") == "AuthorizationQueryParametersError")
    }
}
