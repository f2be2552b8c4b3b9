import Shared

/// The S3 operation a request performs, decided from method, address, query sub-resources and
/// a few headers. Handlers dispatch on it, logs and metrics label with `name`.
enum S3Operation: Sendable, Equatable {
    case listBuckets
    case createBucket, deleteBucket, headBucket
    case listObjects, listObjectsV2, listObjectVersions
    case deleteObjects
    case listMultipartUploads
    /// Any other `?sub-resource` on a bucket (`?versioning`, `?policy`, `?location`, ...).
    case bucketSubresource(String)
    case getObject, headObject, putObject, copyObject, deleteObject
    case createMultipartUpload, uploadPart, uploadPartCopy, completeMultipartUpload, abortMultipartUpload, listParts
    /// Any other `?sub-resource` on an object (`?tagging`, `?acl`, `?retention`, ...).
    case objectSubresource(String)
    /// A method S3 does not define for the addressed resource.
    case unsupported

    /// Stable identifier for logs and metric labels.
    var name: String {
        switch self {
        case .listBuckets: return "ListBuckets"
        case .createBucket: return "CreateBucket"
        case .deleteBucket: return "DeleteBucket"
        case .headBucket: return "HeadBucket"
        case .listObjects: return "ListObjects"
        case .listObjectsV2: return "ListObjectsV2"
        case .listObjectVersions: return "ListObjectVersions"
        case .deleteObjects: return "DeleteObjects"
        case .listMultipartUploads: return "ListMultipartUploads"
        case .bucketSubresource(let s): return "Bucket:\(s)"
        case .getObject: return "GetObject"
        case .headObject: return "HeadObject"
        case .putObject: return "PutObject"
        case .copyObject: return "CopyObject"
        case .deleteObject: return "DeleteObject"
        case .createMultipartUpload: return "CreateMultipartUpload"
        case .uploadPart: return "UploadPart"
        case .uploadPartCopy: return "UploadPartCopy"
        case .completeMultipartUpload: return "CompleteMultipartUpload"
        case .abortMultipartUpload: return "AbortMultipartUpload"
        case .listParts: return "ListParts"
        case .objectSubresource(let s): return "Object:\(s)"
        case .unsupported: return "Unsupported"
        }
    }

    /// Query names that select a sub-resource rather than filter a listing.
    private static let bucketListingParameters: Set<String> = [
        "prefix", "delimiter", "marker", "max-keys", "list-type", "continuation-token", "start-after",
        "fetch-owner", "encoding-type", "key-marker", "version-id-marker", "upload-id-marker", "max-uploads",
        "x-id", "allow-unordered",
    ]

    static func classify(method: String, address: S3RequestAddress, query: [QueryParameter], headers: HTTPFields) -> S3Operation {
        let names = Set(query.map(\.name))
        guard let _ = address.bucket else {
            return method == "GET" ? .listBuckets : .unsupported
        }
        guard address.key != nil else {
            if names.contains("uploads") { return method == "GET" ? .listMultipartUploads : .unsupported }
            if names.contains("delete") { return method == "POST" ? .deleteObjects : .unsupported }
            if names.contains("versions") { return method == "GET" ? .listObjectVersions : .unsupported }
            if let sub = names.subtracting(bucketListingParameters).sorted().first {
                return .bucketSubresource(sub)
            }
            switch method {
            case "GET": return query.contains { $0.name == "list-type" && $0.value == "2" } ? .listObjectsV2 : .listObjects
            case "HEAD": return .headBucket
            case "PUT": return .createBucket
            case "DELETE": return .deleteBucket
            default: return .unsupported
            }
        }
        let hasUploadID = names.contains("uploadId")
        switch method {
        case "GET":
            if hasUploadID { return .listParts }
            if let sub = objectSubresource(names) { return .objectSubresource(sub) }
            return .getObject
        case "HEAD":
            return .headObject
        case "PUT":
            if hasUploadID && names.contains("partNumber") {
                return headers.contains("x-amz-copy-source") ? .uploadPartCopy : .uploadPart
            }
            if let sub = objectSubresource(names) { return .objectSubresource(sub) }
            return headers.contains("x-amz-copy-source") ? .copyObject : .putObject
        case "POST":
            if names.contains("uploads") { return .createMultipartUpload }
            if hasUploadID { return .completeMultipartUpload }
            if let sub = objectSubresource(names) { return .objectSubresource(sub) }
            return .unsupported
        case "DELETE":
            if hasUploadID { return .abortMultipartUpload }
            if let sub = objectSubresource(names) { return .objectSubresource(sub) }
            return .deleteObject
        default:
            return .unsupported
        }
    }

    /// Object query names that only modify a plain GET/PUT/DELETE rather than select a sub-resource.
    private static let objectPlainParameters: Set<String> = [
        "versionId", "partNumber", "x-id",
        "response-content-type", "response-content-language", "response-expires", "response-cache-control",
        "response-content-disposition", "response-content-encoding",
    ]

    private static func objectSubresource(_ names: Set<String>) -> String? {
        names.subtracting(objectPlainParameters).sorted().first
    }
}
