import Foundation
import Shared

/// A response that could not be completed after its head was written; the connection must close.
struct S3ResponseAborted: Error, CustomStringConvertible {
    var detail: String
    var description: String { "response aborted: \(detail)" }
}

/// The S3 side of the gateway: routes, authenticates, dispatches per operation, answers errors as S3 XML
/// and reports every request to the observer.
struct S3RequestHandler: HTTPRequestHandler {
    let gateway: any GatewayEndpoints
    let authenticator: RequestAuthenticator
    let passthrough: PassthroughHandler
    /// Object operations when encrypting; nil in pass-through mode (`GATEWAY_PASSTHROUGH=true`).
    let encrypted: EncryptedObjectHandler?
    let observer: any S3RequestObserver
    /// `GATEWAY_DOMAINS`: base domains for virtual-host-style addressing.
    let baseDomains: [String]
    /// Unix seconds, for the signature's clock-skew check.
    let now: @Sendable () -> Int64
    /// The per-bucket encryption policy (`ENCRYPTION_POLICY_FILE`); nil: every bucket is encrypted.
    let bucketDecision: (@Sendable (String) -> BucketDecision)?
    /// Starts each S3 request's server span (`Tracer.disabled`: spans only carry the client's trace context on).
    let tracer: Tracer
    /// The gateway endpoints this listener answers (`GatewayRoute`); the others' paths are S3 requests.
    let servedEndpoints: Set<GatewayRoute.Endpoint>

    /// - Parameters:
    ///   - encryptor: nil stores objects as sent (pass-through mode); otherwise objects are encrypted
    ///     and `encryptionObserver` receives timings and tamper reports.
    ///   - allowPlaintextReads: `ENCRYPTION_ALLOW_PLAINTEXT_READS`; false refuses objects without gateway metadata.
    init(gateway: any GatewayEndpoints, authenticator: RequestAuthenticator, backend: BackendClient, observer: any S3RequestObserver,
         baseDomains: [String], encryptor: ObjectEncryptor? = nil, encryptionObserver: any EncryptionObserver = NoEncryptionObserver(),
         allowPlaintextReads: Bool = true, bucketDecision: (@Sendable (String) -> BucketDecision)? = nil, tracer: Tracer = .disabled,
         servedEndpoints: Set<GatewayRoute.Endpoint> = GatewayRoute.Endpoint.all,
         now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.gateway = gateway
        self.servedEndpoints = servedEndpoints
        self.authenticator = authenticator
        self.passthrough = PassthroughHandler(backend: backend, encrypting: encryptor != nil)
        self.encrypted = encryptor.map {
            EncryptedObjectHandler(backend: backend, encryptor: $0, observer: encryptionObserver, allowPlaintextReads: allowPlaintextReads)
        }
        self.observer = observer
        self.baseDomains = baseDomains
        self.now = now
        self.bucketDecision = bucketDecision
        self.tracer = tracer
    }

    /// Throws `S3ResponseAborted` only when a response was cut off after its head went out, so the server
    /// closes the connection; every other outcome is a complete response (backend answer or S3 XML error).
    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws {
        // Split out of the target once (each is a scan and a new String).
        let rawPath = head.rawPath
        let route = GatewayRoute.decide(method: head.method, rawPath: rawPath, rawQuery: head.rawQuery, headers: head.headers,
                                        served: servedEndpoints)
        if case .gateway(let endpoint) = route {
            gateway.serve(endpoint, head: head, response: response, context: context)
            return
        }
        // W3C trace context from the client; the span is `Span.current` for the backend client and the cipher.
        let parent = SpanContext.parse(traceparent: head.headers["traceparent"], tracestate: head.headers["tracestate"])
        // Attributes only for a tracer that records: the array and the request id's text are allocations.
        let span = tracer.startSpan(head.method, kind: .server, parent: parent, attributes: !tracer.isEnabled ? [] : [
            ("http.request.method", .string(head.method)), ("url.path", .string(rawPath)),
            ("client.address", .string(context.remoteAddress)), ("aws.request_id", .string(context.requestID.text)),
        ])
        defer { span.end() }
        try span.withCurrent { try serveS3(head, body: body, response: response, context: context, span: span) }
    }

    private func serveS3(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext,
                         span: Span) throws {
        var summary = S3RequestSummary(
            requestID: context.requestID, remoteAddress: context.remoteAddress, method: head.method,
            bucket: nil, key: nil, operation: "Unknown", status: 0, bytesIn: 0, bytesOut: 0, duration: .zero,
            accessKey: nil, errorCode: nil, errorDetail: nil, backendError: false, aborted: false)
        var verifyingBody: VerifyingBody?
        do {
            let request: S3Request, wrapped: VerifyingBody, writer: ResponseWriter
            if head.method == "POST", let address = try? S3RequestAddress.resolve(rawPath: head.rawPath, host: head.headers["Host"],
                                                                                   baseDomains: baseDomains),
               Self.isPostObject(head, address: address) {
                // A browser form: authenticated by its signed policy, then stored as a PutObject.
                (request, wrapped, writer) = try preparePostObject(head, address: address, body: body, response: response, context: context)
            } else {
                request = try authenticate(head, context: context)
                wrapped = VerifyingBody(body, declaration: try PayloadDeclaration.parse(
                    headers: head.headers, payload: request.identity.payload, chain: request.identity.chunkChain))
                writer = response
            }
            // The connection proved its credentials (a header/presigned signature or a form's signed policy): it leaves
            // the small unauthenticated budget (anonymous requests forwarded under ANONYMOUS_ACCESS=forward prove
            // nothing and stay in it).
            if request.identity.accessKey != nil { context.connection.markAuthenticated() }
            summary.bucket = request.address.bucket
            summary.key = request.address.key
            summary.operation = request.operation.name
            summary.accessKey = request.identity.accessKey
            verifyingBody = wrapped
            let result = try dispatch(request, body: wrapped, response: writer)
            summary.status = result.status
            summary.bytesOut = result.bytesOut
        } catch let failure as AuthenticationFailure {
            summary.authFailure = failure.reason.rawValue
            summary.accessKey = nil
            summary.attemptedAccessKey = failure.accessKey
            answer(failure.error, head: head, response: response, context: context, summary: &summary)
        } catch let error as S3Error {
            answer(error, head: head, response: response, context: context, summary: &summary)
        } catch let failure as BackendFailure {
            switch failure {
            case .unavailable(let detail):
                summary.backendError = true
                answer(S3Error.serviceUnavailable(), detail: detail, head: head, response: response, context: context, summary: &summary)
            case .requestBody(let inner as S3Error):
                answer(inner, head: head, response: response, context: context, summary: &summary)
            case .requestBody(let inner):
                answer(S3Error.incompleteBody(), detail: "reading the request body: \(inner)", head: head, response: response,
                       context: context, summary: &summary)
            case .refused(let error):
                answer(error, head: head, response: response, context: context, summary: &summary)
            case .aborted(let detail, let status, let cause):
                summary.status = status
                summary.aborted = true
                summary.backendError = cause == .backend
                summary.errorDetail = detail
            }
        } catch let error as EncryptionError where KeyPolicyRouting.s3Error(for: error) != nil {
            answer(KeyPolicyRouting.s3Error(for: error)!, head: head, response: response, context: context, summary: &summary)
        } catch {
            answer(S3Error.internalError(), detail: "\(error)", head: head, response: response, context: context, summary: &summary)
        }
        summary.bytesIn = verifyingBody?.bytesRead ?? 0
        summary.duration = ContinuousClock.now - context.startedAt
        if span.traceparent != nil {
            summary.traceID = span.context.traceID.description
            summary.spanID = span.context.spanID.description
        }
        Self.record(summary, on: span)
        observer.s3RequestCompleted(summary)
        if summary.aborted { throw S3ResponseAborted(detail: summary.errorDetail ?? "response aborted") }
    }

    /// Resolves the address, verifies the signature, classifies the operation and checks that the credential
    /// may perform it. The head handlers receive carries no aws-chunked or checksum headers: the body pipeline
    /// consumes them (`PayloadDeclaration`).
    func authenticate(_ head: HTTPRequestHead, context: RequestContext) throws -> S3Request {
        // Split out of the target once (each is a scan and a new String).
        let rawPath = head.rawPath, rawQuery = head.rawQuery
        let address = try S3RequestAddress.resolve(rawPath: rawPath, host: head.headers["Host"], baseDomains: baseDomains)
        guard var query = QueryString.parse(rawQuery) else { throw S3Error.invalidURI() }
        let verification = Span.startChild("authenticate")
        defer { verification.end() }
        let identity: VerifiedRequest
        do {
            identity = try authenticator.authenticate(
                method: head.method, rawPath: rawPath, rawQuery: rawQuery, headers: head.headers,
                virtualHostBucket: address.style == .virtualHost ? address.bucket : nil, now: now())
        } catch {
            verification.setStatus(.error(error.error.code))
            throw error
        }
        // A presigned URL's own parameters authenticate the client; the backend request is signed anew.
        query.removeAll { identity.scheme.queryParameters.contains($0.name) }
        let operation = S3Operation.classify(method: head.method, address: address, query: query, headers: head.headers)
        try AccessPolicy.check(identity.credential, method: head.method, operation: operation, bucket: address.bucket,
                               copySourceBucket: CopySource.parse(head.headers["x-amz-copy-source"])?.bucket)
        var forwarded = head
        forwarded.headers = PayloadDeclaration.forwardedHeaders(head.headers)
        return S3Request(head: forwarded, address: address, query: query, operation: operation, identity: identity, context: context)
    }

    /// The per-operation seam. In pass-through mode every request is forwarded as sent. When encrypting,
    /// the classification is an allow-list: object reads and writes go through `EncryptedObjectHandler`,
    /// operations whose bodies and answers carry no object data are forwarded, everything else is refused;
    /// and the backend sees only the query parameters the gateway understood for the operation.
    func dispatch(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        try Self.rejectReservedHeaders(request.head.headers)
        if case .methodNotAllowed = request.operation { throw S3Error.methodNotAllowed(request.head.method) }
        guard let encrypted else { return try passthrough.handle(request, body: body, response: response) }
        var request = request
        request.query = request.operation.understoodParameters(request.query)
        if let bucket = request.address.bucket, let bucketDecision,
           KeyPolicyRouting.bypassesEncryption(request, decision: bucketDecision(bucket)) {
            try KeyPolicyRouting.checkPlainCopySource(request, backend: passthrough.backend)
            return try passthrough.handle(request, body: body, response: response)
        }
        switch request.operation {
        case .getObject, .headObject, .getObjectAttributes, .putObject, .copyObject, .listObjects, .listObjectsV2, .listObjectVersions:
            return try encrypted.handle(request, body: body, response: response)
        case .createMultipartUpload, .uploadPart, .uploadPartCopy, .completeMultipartUpload, .abortMultipartUpload, .listParts,
             .listMultipartUploads:
            return try encrypted.handleMultipart(request, body: body, response: response)
        case .listBuckets, .createBucket, .deleteBucket, .headBucket, .deleteObjects, .deleteObject, .metadata:
            return try passthrough.handle(request, body: body, response: response)
        case .refused(let operation):
            throw S3Error.notImplemented(operation.reason)
        case .unknown(let detail):
            throw S3Error.notImplemented("\(detail) is not an S3 operation this gateway implements; an encrypting gateway refuses "
                + "what it does not understand instead of forwarding it.")
        case .invalid(let error):
            throw error
        case .methodNotAllowed:
            throw S3Error.methodNotAllowed(request.head.method)
        }
    }

    /// The request's outcome on its server span (OpenTelemetry semantic conventions; S3 as an AWS API).
    static func record(_ summary: S3RequestSummary, on span: Span) {
        guard span.isRecording else { return }
        span.setName("S3.\(summary.operation)")
        span.setAttribute("rpc.system", "aws-api")
        span.setAttribute("rpc.service", "S3")
        span.setAttribute("rpc.method", .string(summary.operation))
        if let bucket = summary.bucket { span.setAttribute("aws.s3.bucket", .string(bucket)) }
        if let key = summary.key { span.setAttribute("aws.s3.key", .string(key)) }
        if summary.status > 0 { span.setAttribute("http.response.status_code", .int(summary.status)) }
        if let code = summary.errorCode { span.setAttribute("error.type", .string(code)) }
        if summary.aborted || summary.status >= 500 || summary.status == 0 {
            span.setStatus(.error(summary.errorCode ?? (summary.aborted ? "response aborted" : "HTTP \(summary.status)")))
        }
    }

    /// `x-amz-meta-s3eg-*` belongs to the gateway: a client may neither set it nor plant it through any operation.
    static func rejectReservedHeaders(_ headers: HTTPFields) throws(S3Error) {
        // By index through the buffer: `first(where:)` copied (retained and released) both strings of every field.
        let index = headers.entries.withUnsafeBufferPointer { fields -> Int? in
            for i in fields.indices where EncryptionMetadata.isReserved(headerName: fields[i].name) { return i }
            return nil
        }
        if let index {
            let reserved = headers.entries[index]
            throw S3Error.invalidArgument("The metadata header \(reserved.name.lowercased().prefix(64)) uses the prefix x-amz-meta-s3eg-, which is reserved for the encryption gateway.")
        }
    }

    /// Writes `error` as the S3 XML error document, unless a response is already under way.
    private func answer(_ error: S3Error, detail: String? = nil, head: HTTPRequestHead, response: ResponseWriter,
                        context: RequestContext, summary: inout S3RequestSummary) {
        summary.errorCode = error.code
        summary.errorDetail = detail ?? error.logDetail
        guard !response.headWritten else {
            // Too late for an error document: cut the response so the client sees a failed transfer.
            summary.aborted = true
            return
        }
        let xml = error.withResource(head.rawPath).xml(requestID: context.requestID.text)
        var headers = HTTPFields()
        headers.add("Content-Type", "application/xml")
        do {
            if head.method == "HEAD" {
                // HEAD answers carry no body; the status and code header say it all.
                try response.respond(status: error.status, headers: headers)
            } else {
                try response.respond(status: error.status, headers: headers, body: xml)
                summary.bytesOut = Int64(xml.count)
            }
            summary.status = error.status
        } catch {
            summary.aborted = true
            summary.errorDetail = (summary.errorDetail.map { $0 + "; " } ?? "") + "writing the error response: \(error)"
        }
    }
}
