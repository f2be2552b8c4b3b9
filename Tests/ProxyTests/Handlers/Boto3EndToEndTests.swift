import Foundation
import Shared
import Testing
@testable import Proxy

/// boto3 (a real SDK) → the real HTTP server → S3RequestHandler → moto. Proves wire compatibility of the
/// whole pass-through path: signatures, addressing, streaming, error pass-through, multipart.
@Suite(.serialized)
final class Boto3EndToEndTests {
    let moto: MotoServer
    let harness: HandlerHarness
    let server: HTTPServer

    init() throws {
        try RequiredTool.pythonModules(["boto3"])
        moto = try MotoServer()
        harness = try HandlerHarness(backendEndpoint: moto.endpoint)
        server = try HTTPServer(configuration: HTTPServerConfiguration(listenAddress: "127.0.0.1:0", headerTimeout: .seconds(10),
                                                                       idleTimeout: .seconds(30), bodyIdleTimeout: .seconds(30)),
                                handler: harness.handler)
        try server.start()
    }

    deinit { server.shutdown(grace: .seconds(2)) }

    static let script = #"""
    import boto3, json, sys, hashlib
    from botocore.config import Config
    from botocore.exceptions import ClientError
    port, key_id, secret = sys.argv[1], sys.argv[2], sys.argv[3]
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=key_id,
                      aws_secret_access_key=secret, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    out = {}
    s3.create_bucket(Bucket="e2e")
    key = "dir//a b+c/ünï~.txt"
    body = bytes(range(256)) * 4000
    s3.put_object(Bucket="e2e", Key=key, Body=body, ContentType="text/x-e2e", Metadata={"color": "blue"})
    got = s3.get_object(Bucket="e2e", Key=key)
    out["get_equal"] = got["Body"].read() == body
    out["content_type"] = got["ContentType"]
    out["meta"] = got["Metadata"].get("color")
    out["range"] = list(s3.get_object(Bucket="e2e", Key=key, Range="bytes=5-9")["Body"].read())
    out["head_length"] = s3.head_object(Bucket="e2e", Key=key)["ContentLength"]
    out["list"] = [o["Key"] for o in s3.list_objects_v2(Bucket="e2e", Prefix="dir/").get("Contents", [])]
    try:
        s3.get_object(Bucket="e2e", Key="missing")
        out["missing"] = "found?"
    except ClientError as e:
        out["missing"] = e.response["Error"]["Code"]
    try:
        s3.head_object(Bucket="e2e", Key="missing")
    except ClientError as e:
        out["head_missing"] = e.response["ResponseMetadata"]["HTTPStatusCode"]
    part = b"x" * (5 * 1024 * 1024)
    mpu = s3.create_multipart_upload(Bucket="e2e", Key="multi")
    p1 = s3.upload_part(Bucket="e2e", Key="multi", UploadId=mpu["UploadId"], PartNumber=1, Body=part)
    p2 = s3.upload_part(Bucket="e2e", Key="multi", UploadId=mpu["UploadId"], PartNumber=2, Body=b"tail")
    s3.complete_multipart_upload(Bucket="e2e", Key="multi", UploadId=mpu["UploadId"], MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    out["multi_length"] = s3.head_object(Bucket="e2e", Key="multi")["ContentLength"]
    s3.delete_object(Bucket="e2e", Key=key)
    out["after_delete"] = s3.list_objects_v2(Bucket="e2e", Prefix="dir/").get("KeyCount")
    bad = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=key_id,
                       aws_secret_access_key="wrong", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
    try:
        bad.list_objects_v2(Bucket="e2e")
    except ClientError as e:
        out["bad_secret"] = e.response["Error"]["Code"]
    print(json.dumps(out))
    """#

    struct Result: Decodable {
        var get_equal: Bool
        var content_type: String
        var meta: String?
        var range: [Int]
        var head_length: Int
        var list: [String]
        var missing: String
        var head_missing: Int
        var multi_length: Int
        var after_delete: Int
        var bad_secret: String
    }

    @Test func boto3ThroughTheGateway() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", Self.script, String(server.boundPort), HandlerHarness.clientKey, HandlerHarness.clientSecret]
        var env = ProcessInfo.processInfo.environment
        env["AWS_CONFIG_FILE"] = "/dev/null"
        env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        env.removeValue(forKey: "AWS_CA_BUNDLE")
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(errText)")
        let r = try JSONDecoder().decode(Result.self, from: data)
        #expect(r.get_equal)
        #expect(r.content_type == "text/x-e2e")
        #expect(r.meta == "blue")
        #expect(r.range == [5, 6, 7, 8, 9])
        #expect(r.head_length == 256 * 4000)
        #expect(r.list == ["dir//a b+c/ünï~.txt"])
        #expect(r.missing == "NoSuchKey")
        #expect(r.head_missing == 404)
        #expect(r.multi_length == 5 * 1024 * 1024 + 4)
        #expect(r.after_delete == 0)
        #expect(r.bad_secret == "SignatureDoesNotMatch")
        let ops = Set(harness.observer.summaries.withLock { $0.map(\.operation) })
        #expect(ops.isSuperset(of: ["CreateBucket", "PutObject", "GetObject", "HeadObject", "ListObjectsV2",
                                    "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "DeleteObject"]))
    }
}
