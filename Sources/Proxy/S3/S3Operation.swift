import Shared

/// The S3 operation a request performs, decided from method, address, query and a few headers
/// (`S3Operation.classify`). Handlers dispatch on it; logs and metrics label with `name`, which
/// comes from a fixed table (never from the request), so label values stay bounded.
///
/// The classification is the gateway's allow-list: an encrypting gateway forwards `.metadata`
/// operations unchanged, sends the object operations through the encryption path, and refuses
/// everything else (`.refused`, `.unknown`, `.invalid`, `.methodNotAllowed`). Only the query
/// parameters listed for the operation (`understoodParameters`) reach the backend.
enum S3Operation: Sendable, Equatable {
    case listBuckets
    case createBucket, deleteBucket, headBucket
    case listObjects, listObjectsV2, listObjectVersions
    case deleteObjects
    case getObject, headObject, putObject, copyObject, deleteObject
    /// Answered by the gateway from a HEAD: the backend's answer describes the ciphertext.
    case getObjectAttributes
    case createMultipartUpload, uploadPart, uploadPartCopy, completeMultipartUpload, abortMultipartUpload, listParts
    case listMultipartUploads
    /// A configuration or metadata operation whose request and answer bodies carry no object data
    /// (bucket versioning, policy, lifecycle, …; object ACL, tagging, retention, legal hold, restore).
    case metadata(MetadataOperation)
    /// An S3 operation that reads or writes object bytes outside the encryption path
    /// (SelectObjectContent, GetObjectTorrent, POST Object, …): refused when encrypting.
    case refused(RefusedOperation)
    /// Not an S3 operation the gateway knows (an unknown sub-resource such as `?foo`): refused with
    /// 501 when encrypting. `detail` describes the request for the error message.
    case unknown(detail: String)
    /// A request the gateway cannot classify unambiguously (two sub-resources, a known parameter
    /// name in another letter case, half of a multipart address): refused with 400.
    case invalid(S3Error)
    /// A method S3 does not define for the addressed resource: 405.
    case methodNotAllowed

    /// Stable identifier for logs and metric labels (the AWS API name where there is one).
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
        case .getObject: return "GetObject"
        case .headObject: return "HeadObject"
        case .getObjectAttributes: return "GetObjectAttributes"
        case .putObject: return "PutObject"
        case .copyObject: return "CopyObject"
        case .deleteObject: return "DeleteObject"
        case .createMultipartUpload: return "CreateMultipartUpload"
        case .uploadPart: return "UploadPart"
        case .uploadPartCopy: return "UploadPartCopy"
        case .completeMultipartUpload: return "CompleteMultipartUpload"
        case .abortMultipartUpload: return "AbortMultipartUpload"
        case .listParts: return "ListParts"
        case .listMultipartUploads: return "ListMultipartUploads"
        case .metadata(let operation): return operation.name
        case .refused(let operation): return operation.rawValue
        case .unknown: return "Unknown"
        case .invalid: return "Invalid"
        case .methodNotAllowed: return "MethodNotAllowed"
        }
    }

    /// True for the operations that create, replace or read object bytes; in encrypting mode they
    /// never take the forwarding path.
    var movesObjectData: Bool {
        switch self {
        case .getObject, .headObject, .putObject, .copyObject, .uploadPart, .uploadPartCopy, .completeMultipartUpload,
             .createMultipartUpload, .refused:
            return true
        default:
            return false
        }
    }

    /// The multipart family, dispatched to `EncryptedObjectHandler+Multipart.swift`.
    var isMultipart: Bool {
        switch self {
        case .createMultipartUpload, .uploadPart, .uploadPartCopy, .completeMultipartUpload, .abortMultipartUpload,
             .listParts, .listMultipartUploads:
            return true
        default:
            return false
        }
    }
}

/// An allow-listed configuration or metadata operation, e.g. `GetBucketVersioning` or `PutObjectTagging`.
struct MetadataOperation: Sendable, Equatable {
    /// The AWS API name.
    var name: String
    /// The query parameters it takes (its sub-resource selector included).
    var parameters: Set<String>
}

/// S3 operations that move object bytes around the encryption path.
enum RefusedOperation: String, Sendable, Equatable {
    case selectObjectContent = "SelectObjectContent"
    case getObjectTorrent = "GetObjectTorrent"
    /// Browser form upload (`POST /bucket`, multipart/form-data): the body would reach the backend as sent.
    case postObject = "PostObject"
    case writeGetObjectResponse = "WriteGetObjectResponse"

    /// Why an encrypting gateway refuses it, for the 501 message.
    var reason: String {
        switch self {
        case .selectObjectContent:
            return "SelectObjectContent is not supported by an encrypting gateway: the backend holds only ciphertext, which it cannot query."
        case .getObjectTorrent:
            return "GetObjectTorrent is not supported by an encrypting gateway: a torrent would describe the ciphertext."
        case .postObject:
            return "POST on a bucket is a browser form upload (POST Object); it needs a multipart/form-data body and no query parameters."
        case .writeGetObjectResponse:
            return "WriteGetObjectResponse (S3 Object Lambda) is not supported by an encrypting gateway."
        }
    }
}

extension S3Operation {
    static func classify(method: String, address: S3RequestAddress, query: [QueryParameter], headers: HTTPFields) -> S3Operation {
        if headers.contains("x-amz-request-route") { return .refused(.writeGetObjectResponse) }
        let names = S3OperationTable.significantNames(query)
        if let error = S3OperationTable.caseMismatch(names) { return .invalid(error) }
        guard address.bucket != nil else {
            return method == "GET" ? .listBuckets : .methodNotAllowed
        }
        if address.key == nil {
            return classifyBucket(method: method, query: query, names: names)
        }
        return classifyObject(method: method, query: query, names: names, headers: headers)
    }

    private static func classifyBucket(method: String, query: [QueryParameter], names: Set<String>) -> S3Operation {
        let selectors = names.filter { S3OperationTable.bucketSelectors.contains($0) }
        if let unknown = S3OperationTable.unknownSelector(query, known: S3OperationTable.bucketSelectors, level: .bucket) {
            return .unknown(detail: "\(method) /bucket?\(unknown)")
        }
        guard selectors.count <= 1 else { return .invalid(S3OperationTable.ambiguous(selectors)) }
        guard let selector = selectors.first else {
            switch method {
            case "GET":
                switch query.last(where: { $0.name == "list-type" })?.value {
                case nil: return .listObjects
                case "2": return .listObjectsV2
                case let other?: return .invalid(.invalidArgument("Invalid list-type \(other.prefix(16)); only list-type=2 (ListObjectsV2) exists."))
                }
            case "HEAD": return .headBucket
            case "PUT": return .createBucket
            case "DELETE": return .deleteBucket
            case "POST": return .refused(.postObject)
            default: return .methodNotAllowed
            }
        }
        switch (selector, method) {
        case ("versions", "GET"): return .listObjectVersions
        case ("uploads", "GET"): return .listMultipartUploads
        case ("delete", "POST"): return .deleteObjects
        default:
            guard let entry = S3OperationTable.bucketConfiguration[selector] else { return .methodNotAllowed }
            let hasID = query.contains { $0.name == "id" }
            guard let name = entry.name(method: method, hasID: hasID) else { return .methodNotAllowed }
            return .metadata(MetadataOperation(name: name, parameters: entry.parameters.union([selector])))
        }
    }

    private static func classifyObject(method: String, query: [QueryParameter], names: Set<String>, headers: HTTPFields) -> S3Operation {
        if let unknown = S3OperationTable.unknownSelector(query, known: S3OperationTable.objectSelectors, level: .object) {
            return .unknown(detail: "\(method) /bucket/key?\(unknown)")
        }
        let selectors = names.filter { S3OperationTable.objectSelectors.contains($0) }
        guard selectors.count <= 1 else { return .invalid(S3OperationTable.ambiguous(selectors)) }
        let copy = headers.contains("x-amz-copy-source")
        switch selectors.first {
        case nil:
            switch method {
            case "GET": return .getObject
            case "HEAD": return .headObject
            case "PUT":
                if names.contains("partNumber") {
                    return .invalid(.invalidRequest("partNumber on PUT needs an uploadId (UploadPart); a PutObject takes no partNumber."))
                }
                return copy ? .copyObject : .putObject
            case "DELETE": return .deleteObject
            default: return .methodNotAllowed
            }
        case "uploadId":
            switch method {
            case "GET": return .listParts
            case "POST": return .completeMultipartUpload
            case "DELETE": return .abortMultipartUpload
            case "PUT":
                guard names.contains("partNumber") else {
                    return .invalid(.invalidRequest("uploadId on PUT needs a partNumber (UploadPart); a PutObject takes no uploadId."))
                }
                return copy ? .uploadPartCopy : .uploadPart
            default: return .methodNotAllowed
            }
        case "uploads":
            return method == "POST" ? .createMultipartUpload : .methodNotAllowed
        case "select":
            return method == "POST" ? .refused(.selectObjectContent) : .methodNotAllowed
        case "torrent":
            return method == "GET" ? .refused(.getObjectTorrent) : .methodNotAllowed
        case "attributes":
            return method == "GET" ? .getObjectAttributes : .methodNotAllowed
        case let selector?:
            guard let entry = S3OperationTable.objectConfiguration[selector],
                  let name = entry.name(method: method, hasID: false) else { return .methodNotAllowed }
            return .metadata(MetadataOperation(name: name, parameters: entry.parameters.union([selector])))
        }
    }

    /// The query parameters of `query` the gateway understood for this operation, in their original
    /// order: the only ones an encrypting gateway sends to the backend. Everything else (`x-id`,
    /// presigned-URL credentials, parameters S3 ignores) stays behind, so the backend sees exactly the
    /// operation the gateway decided on.
    func understoodParameters(_ query: [QueryParameter]) -> [QueryParameter] {
        let allowed: Set<String>
        switch self {
        case .listBuckets: allowed = ["max-buckets", "continuation-token", "prefix", "bucket-region"]
        case .createBucket, .deleteBucket, .headBucket, .putObject, .copyObject: allowed = []
        case .listObjects: allowed = S3OperationTable.listingParameters.union(["marker"])
        case .listObjectsV2:
            allowed = S3OperationTable.listingParameters.union(["list-type", "continuation-token", "start-after", "fetch-owner"])
        case .listObjectVersions: allowed = S3OperationTable.listingParameters.union(["versions", "key-marker", "version-id-marker"])
        case .listMultipartUploads:
            allowed = ["uploads", "prefix", "delimiter", "key-marker", "upload-id-marker", "max-uploads", "encoding-type"]
        case .deleteObjects: allowed = ["delete"]
        case .getObject, .headObject: allowed = S3OperationTable.readParameters
        case .getObjectAttributes: allowed = ["attributes", "versionId"]
        case .deleteObject: allowed = ["versionId"]
        case .createMultipartUpload: allowed = ["uploads"]
        case .uploadPart, .uploadPartCopy: allowed = ["uploadId", "partNumber"]
        case .completeMultipartUpload, .abortMultipartUpload: allowed = ["uploadId"]
        case .listParts: allowed = ["uploadId", "max-parts", "part-number-marker"]
        case .metadata(let operation): allowed = operation.parameters
        case .refused, .unknown, .invalid, .methodNotAllowed: allowed = []
        }
        return query.filter { allowed.contains($0.name) }
    }
}

/// The tables behind `S3Operation.classify`: which query names select a sub-resource, which are
/// parameters, and which S3 ignores.
enum S3OperationTable {
    struct Configuration {
        /// Operation name per method; `GET` of an id-addressed sub-resource without `id` lists them.
        var get: String?
        var put: String?
        var delete: String?
        var post: String?
        var list: String?
        var parameters: Set<String> = []

        func name(method: String, hasID: Bool) -> String? {
            switch method {
            case "GET": return hasID || list == nil ? get : list
            case "PUT": return put
            case "DELETE": return delete
            case "POST": return post
            default: return nil
            }
        }
    }

    private static func crud(_ noun: String, delete: Bool = true) -> Configuration {
        Configuration(get: "GetBucket\(noun)", put: "PutBucket\(noun)", delete: delete ? "DeleteBucket\(noun)" : nil)
    }

    private static func idAddressed(_ noun: String) -> Configuration {
        Configuration(get: "GetBucket\(noun)Configuration", put: "PutBucket\(noun)Configuration",
                      delete: "DeleteBucket\(noun)Configuration", list: "ListBucket\(noun)Configurations",
                      parameters: ["id", "continuation-token"])
    }

    /// Bucket sub-resources whose bodies are configuration documents (no object data).
    static let bucketConfiguration: [String: Configuration] = [
        "accelerate": Configuration(get: "GetBucketAccelerateConfiguration", put: "PutBucketAccelerateConfiguration"),
        "acl": crud("Acl", delete: false),
        "analytics": idAddressed("Analytics"),
        "cors": crud("Cors"),
        "encryption": crud("Encryption"),
        "intelligent-tiering": idAddressed("IntelligentTiering"),
        "inventory": idAddressed("Inventory"),
        "lifecycle": Configuration(get: "GetBucketLifecycleConfiguration", put: "PutBucketLifecycleConfiguration",
                                   delete: "DeleteBucketLifecycle"),
        "location": Configuration(get: "GetBucketLocation"),
        "logging": crud("Logging", delete: false),
        "metrics": idAddressed("Metrics"),
        "notification": Configuration(get: "GetBucketNotificationConfiguration", put: "PutBucketNotificationConfiguration"),
        "object-lock": Configuration(get: "GetObjectLockConfiguration", put: "PutObjectLockConfiguration"),
        "ownershipControls": crud("OwnershipControls"),
        "policy": crud("Policy"),
        "policyStatus": Configuration(get: "GetBucketPolicyStatus"),
        "publicAccessBlock": Configuration(get: "GetPublicAccessBlock", put: "PutPublicAccessBlock", delete: "DeletePublicAccessBlock"),
        "replication": crud("Replication"),
        "requestPayment": crud("RequestPayment", delete: false),
        "tagging": crud("Tagging"),
        "versioning": crud("Versioning", delete: false),
        "website": crud("Website"),
    ]

    /// Object sub-resources whose bodies are metadata documents (no object data).
    static let objectConfiguration: [String: Configuration] = [
        "acl": Configuration(get: "GetObjectAcl", put: "PutObjectAcl", parameters: ["versionId"]),
        "tagging": Configuration(get: "GetObjectTagging", put: "PutObjectTagging", delete: "DeleteObjectTagging",
                                 parameters: ["versionId"]),
        "retention": Configuration(get: "GetObjectRetention", put: "PutObjectRetention", parameters: ["versionId"]),
        "legal-hold": Configuration(get: "GetObjectLegalHold", put: "PutObjectLegalHold", parameters: ["versionId"]),
        "restore": Configuration(post: "RestoreObject", parameters: ["versionId"]),
    ]

    static let bucketSelectors: Set<String> = Set(bucketConfiguration.keys).union(["versions", "uploads", "delete"])
    static let objectSelectors: Set<String> = Set(objectConfiguration.keys)
        .union(["uploadId", "uploads", "select", "torrent", "attributes"])

    static let listingParameters: Set<String> = ["prefix", "delimiter", "max-keys", "encoding-type", "allow-unordered"]
    static let readParameters: Set<String> = [
        "versionId", "partNumber", "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
    ]

    /// Every query name the gateway gives a meaning to, at any level.
    static let knownNames: Set<String> = bucketSelectors.union(objectSelectors).union(listingParameters).union(readParameters)
        .union(bucketConfiguration.values.flatMap(\.parameters)).union(objectConfiguration.values.flatMap(\.parameters))
        .union(["list-type", "continuation-token", "start-after", "fetch-owner", "marker", "key-marker", "version-id-marker",
                "upload-id-marker", "max-uploads", "max-parts", "part-number-marker", "select-type", "max-buckets", "bucket-region"])
    private static let knownByLowercase: [String: String] = Dictionary(knownNames.map { ($0.lowercased(), $0) },
                                                                        uniquingKeysWith: { a, _ in a })

    /// Query names S3 ignores for the choice of operation: SDK hints (`x-id`) and the credentials of
    /// presigned URLs (SigV4 `X-Amz-*`, SigV2 `AWSAccessKeyId`/`Signature`/`Expires`).
    static func isIgnored(_ name: String) -> Bool {
        name == "x-id" || name == "AWSAccessKeyId" || name == "Signature" || name == "Expires"
            || name.lowercased().hasPrefix("x-amz-")
    }

    /// The names that take part in classification.
    static func significantNames(_ query: [QueryParameter]) -> Set<String> {
        Set(query.map(\.name).filter { !isIgnored($0) })
    }

    /// A name that is a known name in another letter case (`UploadId`, `Tagging`): S3 names are
    /// case-sensitive, and a backend that compared them case-insensitively would see another operation.
    static func caseMismatch(_ names: Set<String>) -> S3Error? {
        for name in names.sorted() where !knownNames.contains(name) {
            if let known = knownByLowercase[name.lowercased()] {
                return .invalidArgument("Query parameter names are case-sensitive: '\(name.prefix(64))' is not '\(known)'.")
            }
        }
        return nil
    }

    enum Level { case bucket, object }

    /// The first parameter that looks like a sub-resource selector (no value) but selects nothing the
    /// gateway knows at this level (`?foo`, `?versioning` on an object, `?restore` on a bucket).
    /// Unknown parameters with a value are ignored, as S3 ignores them, and never forwarded.
    static func unknownSelector(_ query: [QueryParameter], known: Set<String>, level: Level) -> String? {
        for parameter in query where parameter.value.isEmpty && !isIgnored(parameter.name) {
            let name = parameter.name
            if known.contains(name) { continue }
            let selectsElsewhere = (level == .bucket ? objectSelectors : bucketSelectors).contains(name)
            if knownNames.contains(name) && !selectsElsewhere { continue }
            return String(name.prefix(64))
        }
        return nil
    }

    static func ambiguous(_ selectors: Set<String>) -> S3Error {
        .invalidRequest("The request names several sub-resources (\(selectors.sorted().joined(separator: ", "))); send one per request.")
    }
}
