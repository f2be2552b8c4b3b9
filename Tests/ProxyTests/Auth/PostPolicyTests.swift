import Foundation
import Shared
import Testing
@testable import Proxy

@Suite struct PostPolicyTests {
    /// A policy in the shape of S3's SigV4 POST example, signed independently (Python hmac/hashlib) with the
    /// documentation's example secret for 20151229/us-east-1/s3.
    static let policy = "eyJleHBpcmF0aW9uIjoiMjAzMC0xMi0zMFQxMjowMDowMC4wMDBaIiwiY29uZGl0aW9ucyI6W3siYnVja2V0Ijoic2lndjRleGFtcGxlYnVja2V0In0sWyJzdGFydHMtd2l0aCIsIiRrZXkiLCJ1c2VyL3VzZXIxLyJdLHsiYWNsIjoicHVibGljLXJlYWQifSx7InN1Y2Nlc3NfYWN0aW9uX3JlZGlyZWN0IjoiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSxbInN0YXJ0cy13aXRoIiwiJENvbnRlbnQtVHlwZSIsImltYWdlLyJdLHsieC1hbXotbWV0YS11dWlkIjoiMTQzNjUxMjM2NTEyNzQifSx7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiJBRVMyNTYifSxbInN0YXJ0cy13aXRoIiwiJHgtYW16LW1ldGEtdGFnIiwiIl0seyJ4LWFtei1jcmVkZW50aWFsIjoiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LHsieC1hbXotYWxnb3JpdGhtIjoiQVdTNC1ITUFDLVNIQTI1NiJ9LHsieC1hbXotZGF0ZSI6IjIwMTUxMjI5VDAwMDAwMFoifV19"
    static let sigV4 = "27abf978440607bb036a57b9e978df79c7ad34e9132d678fa2a91d36c858d03b"
    static let sigV2 = "HDkfrfJ7FY4dPOSoRO8VxY7TXuk="
    static let accessKey = "AKIAIOSFODNN7EXAMPLE"
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let now: Int64 = 1_764_000_000  // 2025-11-24, before the policy's 2030 expiration

    let authenticator = RequestAuthenticator(credentials: StaticCredentials(accessKey: accessKey, secretKey: secret), regions: ["us-east-1"])

    static func fields(signature: String = sigV4, key: String = "user/user1/${filename}", extra: [(String, String)] = []) -> [FormField] {
        ([("key", key), ("acl", "public-read"),
          ("success_action_redirect", "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"),
          ("Content-Type", "image/jpeg"), ("x-amz-meta-uuid", "14365123651274"), ("x-amz-server-side-encryption", "AES256"),
          ("X-Amz-Credential", "\(accessKey)/20151229/us-east-1/s3/aws4_request"), ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
          ("X-Amz-Date", "20151229T000000Z"), ("x-amz-meta-tag", ""), ("Policy", policy), ("X-Amz-Signature", signature)] + extra)
            .map { FormField(name: $0.0, value: $0.1) }
    }

    @Test func parsesThePolicy() throws {
        let parsed = try PostPolicy.parse(base64: Self.policy)
        #expect(parsed.expiration == 1_924_862_400)  // 2030-12-30T12:00:00Z
        #expect(parsed.conditions.count == 11)
        #expect(parsed.conditions[0] == .equals(field: "bucket", value: "sigv4examplebucket"))
        #expect(parsed.conditions[1] == .startsWith(field: "key", prefix: "user/user1/"))
        #expect(parsed.conditions[4] == .startsWith(field: "content-type", prefix: "image/"))
    }

    @Test func sigV4FormVerifies() throws {
        let (identity, policy) = try authenticator.authenticatePostForm(Self.fields(), bucket: "sigv4examplebucket", now: Self.now)
        #expect(identity.scheme == .postPolicy && identity.accessKey == Self.accessKey && policy != nil)
        let wrongSignature = Self.fields(signature: String(Self.sigV4.dropLast()) + "0")
        #expect(s3ErrorCode { _ = try authenticator.authenticatePostForm(wrongSignature, bucket: "sigv4examplebucket", now: Self.now) }
                == "SignatureDoesNotMatch")
        let otherRegion = RequestAuthenticator(credentials: StaticCredentials(accessKey: Self.accessKey, secretKey: Self.secret), regions: ["eu-west-1"])
        #expect(s3ErrorCode { _ = try otherRegion.authenticatePostForm(Self.fields(), bucket: "sigv4examplebucket", now: Self.now) }
                == "AuthorizationHeaderMalformed")
    }

    @Test func sigV2FormVerifies() throws {
        var fields = Self.fields().filter { !$0.name.lowercased().hasPrefix("x-amz-") || $0.name.lowercased().hasPrefix("x-amz-meta") || $0.name == "x-amz-server-side-encryption" }
        fields += [FormField(name: "AWSAccessKeyId", value: Self.accessKey), FormField(name: "signature", value: Self.sigV2)]
        // The policy names the SigV4 fields, which a SigV2 form does not send: their conditions fail.
        #expect(s3ErrorCode { _ = try authenticator.authenticatePostForm(fields, bucket: "sigv4examplebucket", now: Self.now) } == "AccessDenied")
        fields += [FormField(name: "x-amz-credential", value: "\(Self.accessKey)/20151229/us-east-1/s3/aws4_request"),
                   FormField(name: "x-amz-algorithm", value: "AWS4-HMAC-SHA256"), FormField(name: "x-amz-date", value: "20151229T000000Z")]
        let (identity, _) = try authenticator.authenticatePostForm(fields.filter { $0.name != "x-amz-signature" }, bucket: "sigv4examplebucket",
                                                                   now: Self.now)
        #expect(identity.scheme == .postPolicy)
        fields[fields.firstIndex { $0.name == "signature" }!].value = "AAAA" + Self.sigV2.dropFirst(4)
        #expect(s3ErrorCode { _ = try authenticator.authenticatePostForm(fields, bucket: "sigv4examplebucket", now: Self.now) }
                == "SignatureDoesNotMatch")
    }

    @Test func conditionsAreEnforced() throws {
        func code(_ fields: [FormField], bucket: String = "sigv4examplebucket", now: Int64 = Self.now) -> String? {
            s3ErrorCode { _ = try authenticator.authenticatePostForm(fields, bucket: bucket, now: now) }
        }
        #expect(code(Self.fields()) == nil)
        #expect(code(Self.fields(), bucket: "otherbucket") == "AccessDenied")
        #expect(code(Self.fields(key: "user/user2/x")) == "AccessDenied")
        #expect(code(Self.fields(extra: [("x-amz-meta-extra", "1")])) == "AccessDenied")
        #expect(code(Self.fields(extra: [("x-ignore-anything", "1")])) == nil)
        #expect(code(Self.fields(), now: 1_924_862_401) == "AccessDenied")  // expired
        var fields = Self.fields()
        fields[fields.firstIndex { $0.name == "Content-Type" }!].value = "image/png, text/html"
        #expect(code(fields) == "AccessDenied")  // every listed type must match starts-with
        fields[fields.firstIndex { $0.name == "Content-Type" }!].value = "image/png, image/gif"
        #expect(code(fields) == nil)
    }

    @Test func invalidPolicies() throws {
        func code(_ json: String) -> String? {
            s3ErrorCode { _ = try PostPolicy.parse(base64: Data(json.utf8).base64EncodedString()) }
        }
        #expect(s3ErrorCode { _ = try PostPolicy.parse(base64: "not base64!") } == "InvalidPolicyDocument")
        #expect(code("[]") == "InvalidPolicyDocument")
        #expect(code(#"{"conditions": []}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "tomorrow", "conditions": []}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "2030-01-01T00:00:00Z"}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["in", "$key", "a"]]}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 10, 1]]}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["eq", "key", "a"]]}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{"a": "1", "b": "2"}]}"#) == "InvalidPolicyDocument")
        #expect(code(#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 0, "1048576"]]}"#) == nil)
    }

    @Test func fileLengthRange() throws {
        let policy = PostPolicy(expiration: 0, conditions: [.contentLengthRange(min: 10, max: 100)])
        try policy.checkLength(10)
        try policy.checkLength(100)
        #expect(s3ErrorCode { try policy.checkLength(101) } == "EntityTooLarge")
        #expect(s3ErrorCode { try policy.checkLength(9) } == "EntityTooSmall")
    }

    @Test func anonymousForms() throws {
        let fields = [FormField(name: "key", value: "k")]
        #expect(s3ErrorCode { _ = try authenticator.authenticatePostForm(fields, bucket: "b", now: Self.now) } == "AccessDenied")
        let open = RequestAuthenticator(credentials: StaticCredentials(accessKey: "A", secretKey: "s"), regions: ["us-east-1"], anonymous: .forward)
        let (identity, policy) = try open.authenticatePostForm(fields, bucket: "b", now: Self.now)
        #expect(identity.credential == nil && identity.scheme == .anonymous && policy == nil)
        #expect(s3ErrorCode { _ = try open.authenticatePostForm(fields + [FormField(name: "signature", value: "x")], bucket: "b", now: Self.now) }
                == "InvalidArgument")
    }
}
