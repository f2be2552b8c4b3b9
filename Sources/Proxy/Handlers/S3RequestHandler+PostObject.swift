import Foundation
import Shared

/// POST Object: a browser form upload (`POST /bucket` with a `multipart/form-data` body whose fields carry the
/// key, a signed policy and object headers, and whose `file` part is the object). The form is authenticated by
/// its policy signature instead of an Authorization header, then becomes an ordinary PutObject: the file part
/// streams through the same verifying body and encryption path, and the answer is rewritten into what S3
/// answers a form (`success_action_status`, `success_action_redirect`).
extension S3RequestHandler {
    /// Forms up to this size are read whole (fields after the file are then allowed, and ignored as S3 does);
    /// larger ones stream, and must end with the file part and the close delimiter.
    static let bufferedFormLimit = 1 << 20

    /// A POST Object: POST on a bucket (no key, no sub-resource) with a multipart/form-data body.
    static func isPostObject(_ head: HTTPRequestHead, address: S3RequestAddress) -> Bool {
        guard head.method == "POST", address.bucket != nil, address.key == nil, (head.rawQuery ?? "").isEmpty,
              let type = head.headers["Content-Type"] else { return false }
        return type.trimmingCharacters(in: .whitespaces).lowercased().hasPrefix("multipart/form-data")
    }

    /// Reads the form up to its file part, verifies the policy signature and conditions and the credential's
    /// rights, and returns the equivalent PutObject, its body (the file, verified as it streams) and the
    /// response writer that turns the PutObject answer into the form's answer.
    func preparePostObject(_ head: HTTPRequestHead, address: S3RequestAddress, body: RequestBody, response: ResponseWriter,
                           context: RequestContext) throws -> (request: S3Request, body: VerifyingBody, response: ResponseWriter) {
        do {
            return try preparePostObjectForm(head, address: address, body: body, response: response, context: context)
        } catch let error as FormDataError {
            throw error.s3Error
        }
    }

    private func preparePostObjectForm(_ head: HTTPRequestHead, address: S3RequestAddress, body: RequestBody, response: ResponseWriter,
                                       context: RequestContext) throws -> (request: S3Request, body: VerifyingBody, response: ResponseWriter) {
        guard let bucket = address.bucket, let boundary = try MultipartFormData.boundary(contentType: head.headers["Content-Type"] ?? "") else {
            throw S3Error.invalidArgument("POST Object needs a multipart/form-data body")
        }
        // The prelude: every field before the file part (bounded), read whole for small forms.
        let small = body.declaredLength.map { $0 <= Self.bufferedFormLimit } ?? true
        var buffer: [UInt8] = []
        var prelude: FormPrelude?
        if small {
            do {
                buffer = try body.readAll(limit: Self.bufferedFormLimit)
            } catch is BodyTooLarge {
                throw S3Error.missingContentLength()  // a chunked form over the buffered limit
            }
            prelude = try MultipartFormData.parsePrelude(buffer, boundary: boundary)
        } else {
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            while prelude == nil {
                let room = MultipartFormData.maxPreludeSize - buffer.count
                let n = try chunk.withUnsafeMutableBytes { try body.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<min($0.count, room)])) }
                guard n > 0 else { break }
                buffer.append(contentsOf: chunk[0..<n])
                prelude = try MultipartFormData.parsePrelude(buffer, boundary: boundary)
            }
        }
        guard let prelude else { throw MultipartFormData.malformed("the form ends before its file part") }

        let (identity, policy) = try authenticator.authenticatePostForm(prelude.fields, bucket: bucket, now: now())
        func field(_ name: String) -> String? { prelude.fields.first { $0.name.lowercased() == name }?.value }
        guard var key = field("key") else { throw S3Error.invalidArgument("Bucket POST must contain a field named 'key'.") }
        if let fileName = prelude.fileName {
            // S3 substitutes the uploaded file's name (without any directory a client left in it).
            let base = fileName.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
            key = key.replacingOccurrences(of: "${filename}", with: base)
        }
        guard !key.isEmpty else { throw S3Error.invalidArgument("The key field must not be empty.") }
        guard key.utf8.count <= S3RequestAddress.maxKeyBytes else { throw S3Error.keyTooLong() }

        // The file: its length is known before anything is sent to the backend.
        let file: RequestBody
        let length: Int64
        if small {
            let delimiter = MultipartFormData.delimiter(boundary)
            guard let end = MultipartFormData.find(delimiter, in: buffer, from: prelude.dataOffset) else {
                throw MultipartFormData.malformed("the file part does not end with the boundary")
            }
            try MultipartFormData.checkTail(Array(buffer[end...]), boundary: boundary)
            file = BufferedRequestBody(Array(buffer[prelude.dataOffset..<end]))
            length = Int64(end - prelude.dataOffset)
        } else {
            let close = MultipartFormData.closeDelimiter(boundary)
            length = body.declaredLength! - Int64(prelude.dataOffset) - Int64(close.count)
            guard length >= 0 else { throw MultipartFormData.malformed("the form is shorter than its closing boundary") }
            file = StreamedFormFile(body, leftover: Array(buffer[prelude.dataOffset...]), length: length, boundary: boundary)
        }
        try policy?.checkLength(length)
        guard length <= PassthroughHandler.maxSingleUpload else { throw S3Error.entityTooLarge() }
        try AccessPolicy.check(identity.credential, method: "PUT", operation: .putObject, bucket: bucket, copySourceBucket: nil)

        var headers = try Self.objectHeaders(prelude.fields)
        headers.set("Host", head.headers["Host"] ?? "")
        headers.set("Content-Length", String(length))
        let target = "/\(URIEncoding.encode(bucket))/\(URIEncoding.encode(key, keepSlash: true))"
        let put = HTTPRequestHead(method: "PUT", target: target, headers: headers, minorVersion: head.minorVersion)
        let request = S3Request(head: put, address: S3RequestAddress(bucket: bucket, key: key, style: .path), query: [],
                                operation: .putObject, identity: identity, context: context)
        let verifying = VerifyingBody(file, declaration: try PayloadDeclaration.parse(headers: headers, payload: .unsigned, chain: nil))
        let scheme = head.headers["X-Forwarded-Proto"].map { $0.lowercased() == "https" ? "https" : "http" } ?? "http"
        let answer = PostObjectResponse(response, bucket: bucket, key: key, successStatus: field("success_action_status"),
                                        redirect: field("success_action_redirect") ?? field("redirect"),
                                        location: "\(scheme)://\(head.headers["Host"] ?? "localhost")\(target)")
        var forwarded = request
        forwarded.head.headers = PayloadDeclaration.forwardedHeaders(headers)
        return (forwarded, verifying, answer)
    }

    /// Form fields that S3 stores as object headers. A field the gateway does not know stays a form field (S3
    /// ignores those too). The `tagging` field is a `Tagging` XML document: read strictly, checked as S3 checks
    /// tags (`MalformedXML`, `InvalidTag`) and sent as the upload's `x-amz-tagging` header.
    static func objectHeaders(_ fields: [FormField]) throws(S3Error) -> HTTPFields {
        var headers = HTTPFields()
        let plain: Set<String> = ["content-type", "cache-control", "content-disposition", "content-encoding", "content-language",
                                  "expires", "content-md5"]
        let signing: Set<String> = ["x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "x-amz-security-token"]
        for field in fields {
            let name = field.name.lowercased()
            if plain.contains(name) {
                headers.set(field.name, field.value)
            } else if name == "acl" {
                headers.set("x-amz-acl", field.value)
            } else if name == "tagging" {
                guard !fields.contains(where: { $0.name.lowercased() == "x-amz-tagging" }) else {
                    throw S3Error.invalidArgument("A form cannot carry both the tagging and the x-amz-tagging field.")
                }
                let tags = try TaggingDocument.parse(Array(field.value.utf8))
                if !tags.tags.isEmpty { headers.set("x-amz-tagging", tags.headerValue) }
            } else if name.hasPrefix("x-amz-"), !signing.contains(name) {
                headers.add(field.name, field.value)
            }
        }
        return headers
    }
}

extension FormDataError {
    /// S3's answer to a refused form.
    var s3Error: S3Error {
        switch kind {
        case .malformed:
            return S3Error(code: "MalformedPOSTRequest",
                           message: "The body of your POST request is not well-formed multipart/form-data: \(message).", status: 400)
        case .noFile:
            return S3Error.invalidArgument(message)
        }
    }
}

/// A small request body already in memory (the file of a form read whole).
final class BufferedRequestBody: RequestBody {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var declaredLength: Int64? { Int64(bytes.count) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}

/// The file part of a large form, streamed: exactly `length` bytes (the form's length minus the prelude and the
/// close delimiter), which must not contain the boundary, followed by exactly `\r\n--boundary--\r\n` and the end of
/// the body. Both are checked before the last file byte is handed out, so a form framed otherwise stores nothing.
final class StreamedFormFile: RequestBody {
    private let inner: RequestBody
    private var leftover: [UInt8]
    private var leftoverOffset = 0
    private var remaining: Int64
    private let close: [UInt8]
    private var scanner: DelimiterScanner
    let declaredLength: Int64?

    init(_ inner: RequestBody, leftover: [UInt8], length: Int64, boundary: String) {
        self.inner = inner
        self.leftover = leftover
        remaining = length
        declaredLength = length
        close = MultipartFormData.closeDelimiter(boundary)
        scanner = DelimiterScanner(MultipartFormData.delimiter(boundary))
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard remaining > 0, buffer.count > 0 else { return 0 }
        let limit = Int(min(Int64(buffer.count), remaining))
        let n = try readSource(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<limit]))
        guard n > 0 else { throw S3Error.incompleteBody() }
        if scanner.scan(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) {
            throw MultipartFormData.malformed("a form over \(S3RequestHandler.bufferedFormLimit >> 20) MiB must end with its file part").s3Error
        }
        remaining -= Int64(n)
        if remaining == 0 { try checkClose() }
        return n
    }

    /// The close delimiter, then the end of the body.
    private func checkClose() throws {
        var tail = [UInt8](repeating: 0, count: close.count + 1)
        var filled = 0
        while filled < tail.count {
            let n = try tail.withUnsafeMutableBytes { try readSource(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
            if n == 0 { break }
            filled += n
        }
        guard filled == close.count, tail[0..<filled].elementsEqual(close) else {
            throw MultipartFormData.malformed("a form over \(S3RequestHandler.bufferedFormLimit >> 20) MiB must end with its file part and \\r\\n--boundary--\\r\\n").s3Error
        }
    }

    /// The bytes read with the prelude first, then the connection.
    private func readSource(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if leftoverOffset < leftover.count {
            let n = min(buffer.count, leftover.count - leftoverOffset)
            leftover.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + leftoverOffset, byteCount: n) }
            leftoverOffset += n
            if leftoverOffset == leftover.count { leftover = [] ; leftoverOffset = 0 }
            return n
        }
        return try inner.read(into: buffer)
    }
}

/// Turns the PutObject answer into a form's answer: `success_action_redirect` → 303 to that URL with `bucket`,
/// `key` and `etag` appended; else `success_action_status` 200 or 201 (with a `PostResponse` document) or 204 (the
/// default). Errors pass through unchanged.
final class PostObjectResponse: ResponseWriter {
    private let inner: ResponseWriter
    private let bucket: String
    private let key: String
    private let status: Int
    private let redirect: URLComponents?
    private let location: String
    private var rewritten: [UInt8]?

    init(_ inner: ResponseWriter, bucket: String, key: String, successStatus: String?, redirect: String?, location: String) {
        self.inner = inner
        self.bucket = bucket
        self.key = key
        status = ["200": 200, "201": 201][successStatus ?? ""] ?? 204
        self.redirect = redirect.flatMap(URLComponents.init(string:)).flatMap { ["http", "https"].contains($0.scheme?.lowercased() ?? "") ? $0 : nil }
        self.location = location
    }

    var headWritten: Bool { inner.headWritten }

    func writeHead(_ head: HTTPResponseHead) throws {
        guard (200..<300).contains(head.status) else { try inner.writeHead(head); return }
        let etag = head.headers["ETag"] ?? ""
        var headers = HTTPFields()
        for field in head.headers where ["etag", "x-amz-version-id"].contains(field.name.lowercased()) { headers.add(field.name, field.value) }
        var body: [UInt8] = []
        var status = self.status
        if var redirect {
            status = 303
            redirect.queryItems = (redirect.queryItems ?? []) + [URLQueryItem(name: "bucket", value: bucket),
                                                                 URLQueryItem(name: "key", value: key),
                                                                 URLQueryItem(name: "etag", value: etag)]
            headers.set("Location", redirect.string ?? location)
        } else {
            headers.set("Location", location)
            if status == 201 {
                body = Array(("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>\(XMLText.escape(location))</Location>"
                    + "<Bucket>\(XMLText.escape(bucket))</Bucket><Key>\(XMLText.escape(key))</Key><ETag>\(XMLText.escape(etag))</ETag></PostResponse>").utf8)
                headers.set("Content-Type", "application/xml")
            }
        }
        rewritten = body
        try inner.writeHead(HTTPResponseHead(status: status, headers: headers, contentLength: Int64(body.count)))
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard rewritten == nil else { return }  // the backend's (empty) PutObject body is replaced
        try inner.write(bytes)
    }

    func finish() throws {
        if let body = rewritten, !body.isEmpty { try inner.write(body) }
        try inner.finish()
    }
}
