import Foundation
import Shared

/// `s3-encryption-gateway decrypt`: offline recovery of plaintext, straight from the backend or
/// from a saved ciphertext file and its metadata, without a running gateway.
enum DecryptCommand {
    static let usage = """
        usage:
          s3-encryption-gateway decrypt --bucket BUCKET --key KEY [--output FILE|-]
          s3-encryption-gateway decrypt --bucket BUCKET --key KEY --print-metadata
          s3-encryption-gateway decrypt --input CIPHERTEXT --metadata METADATA.json --bucket BUCKET --key KEY [--output FILE|-]

        Decrypts one object with the gateway's key settings (docs/keys.md): the provider that protects the
        object must be configured (ENCRYPTION_KEY_FILE, ENCRYPTION_PASSWORD, KMIP_*, AWS_KMS_* or VAULT_*,
        older raw keys and passwords included) and its key manager reachable. The first form reads the object from the backend (BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, ...). The
        second prints the object's x-amz-meta-* headers as a JSON object, the file the third form reads
        together with the object's stored bytes (e.g. saved with `aws s3 cp` against the backend).
        BUCKET and KEY are always needed: every data key is bound to its object's name.
        Plain (unencrypted) objects are copied through unchanged. Memory use is bounded (streaming).

        options:
          --bucket BUCKET        bucket of the object (required)
          --key KEY              key of the object (required)
          --output FILE|-        where the plaintext goes (default -, standard output). A file is written
                                 as FILE.partial and renamed only when the whole object verified; on any
                                 error FILE.partial is removed and FILE is left untouched.
          --print-metadata       print the metadata JSON instead of decrypting
          --input CIPHERTEXT     decrypt this local file instead of reading the backend
          --metadata FILE.json   the object's metadata (required with --input)

        exit codes: 0 success, 1 the object could not be read or failed verification (tampered,
        truncated, wrong password), 2 bad flags or configuration.

        """

    struct Options: Equatable {
        enum Source: Equatable {
            case backend
            case printMetadata
            case local(input: String, metadata: String)
        }

        var bucket: String
        var key: String
        var source: Source
        /// nil or "-" = standard output.
        var output: String?

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            let flags = try CommandFlags(arguments, valued: ["--bucket", "--key", "--output", "--input", "--metadata"],
                                         boolean: ["--print-metadata"])
            let bucket = try flags.required("--bucket")
            let key = try flags.required("--key")
            let source: Source
            switch (flags["--input"], flags["--metadata"], flags.has("--print-metadata")) {
            case (nil, nil, false): source = .backend
            case (nil, nil, true):
                guard flags["--output"] == nil else { throw UsageError(message: "--print-metadata writes to standard output; drop --output") }
                source = .printMetadata
            case (let input?, let metadata?, false):
                guard !input.isEmpty, !metadata.isEmpty else { throw UsageError(message: "--input and --metadata need file names") }
                source = .local(input: input, metadata: metadata)
            case (_, _, true): throw UsageError(message: "--print-metadata reads the backend; it cannot be combined with --input/--metadata")
            case (nil, _, false): throw UsageError(message: "--metadata needs --input (the ciphertext file)")
            case (_, nil, false): throw UsageError(message: "--input needs --metadata (the object's metadata JSON, see --print-metadata)")
            }
            let output = flags["--output"]
            if output?.isEmpty == true { throw UsageError(message: "--output needs a file name or -") }
            return Options(bucket: bucket, key: key, source: source, output: output)
        }
    }

    /// Failure of one decryption (exit code 1).
    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(usage, terminator: "")
            return 0
        }
        let options: Options
        do {
            options = try Options.parse(arguments)
        } catch {
            Console.error("s3-encryption-gateway decrypt: \(error.message)\n\n\(usage)")
            return 2
        }
        var backend: BackendClient?
        var keys: KeyService?
        do {
            if options.source != .printMetadata { keys = try ToolSettings.keys(environment: environment).service }
            if case .local = options.source {} else { backend = try ToolSettings.backendClient(environment: environment) }
        } catch {
            Console.error("s3-encryption-gateway decrypt: \(error)")
            return 2
        }
        let identity = ObjectIdentity(bucket: options.bucket, key: options.key)
        do {
            switch options.source {
            case .printMetadata:
                let head: HTTPClientResponse
                do {
                    head = try backend!.headObject(bucket: options.bucket, key: options.key)
                } catch {
                    throw Failure(message: "cannot read \(options.bucket)/\(options.key): \(error)")
                }
                Console.out(MetadataDocument.json(headers: head.headers))
            case .backend:
                let encryptor = ObjectEncryptor(keys: keys!)
                try writeOutput(options.output) { sink throws in
                    try decryptFromBackend(backend!, identity: identity, encryptor: encryptor, sink: sink)
                }
            case .local(let input, let metadataPath):
                let encryptor = ObjectEncryptor(keys: keys!)
                let headers = try MetadataDocument.read(path: metadataPath)
                try writeOutput(options.output) { sink throws in
                    try decryptLocal(path: input, headers: headers, identity: identity, encryptor: encryptor, sink: sink)
                }
            }
        } catch {
            Console.error("s3-encryption-gateway decrypt: \(options.bucket)/\(options.key): \(error)")
            return 1
        }
        return 0
    }

    /// Runs `body` with the output sink; a file output is committed only if `body` succeeds.
    static func writeOutput(_ path: String?, _ body: (OutputSink) throws -> Void) throws {
        let sink: OutputSink
        do {
            sink = try OutputSink(path: path)
        } catch {
            throw Failure(message: "\(error)")
        }
        do {
            try body(sink)
            try sink.commit()
        } catch {
            sink.discard()
            if sink.isFile {
                throw Failure(message: "\(error) (no output written; \(sink.partialPath ?? "") removed)")
            }
            throw Failure(message: "\(error) (standard output received only verified chunks but is incomplete)")
        }
    }

    static func decryptLocal(path: String, headers: [(name: String, value: String)], identity: ObjectIdentity,
                             encryptor: ObjectEncryptor, sink: OutputSink) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(message: "cannot stat \(path): \(String(cString: strerror(errno)))") }
        let decryptor = try ObjectDecryptor(headers: headers, storedLength: Int(info.st_size), identity: identity, encryptor: encryptor)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "reading \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            try decryptor.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), emit: sink.write)
        }
        try decryptor.finish(emit: sink.write)
    }

    static func decryptFromBackend(_ backend: BackendClient, identity: ObjectIdentity, encryptor: ObjectEncryptor,
                                   sink: OutputSink) throws {
        let download = DecryptingDownload(identity: identity, encryptor: encryptor, sink: sink)
        do {
            try backend.getObject(bucket: identity.bucket, key: identity.key, handler: download)
        } catch let failure as BackendFailure {
            throw Failure(message: "reading from the backend failed: \(failure)")
        }
        guard let decryptor = download.decryptor else {
            throw Failure(message: "the backend sent no response")
        }
        try decryptor.finish(emit: sink.write)
    }
}

/// Receives a backend GET: checks the status, builds the decryptor from the response headers and
/// feeds it the body as it arrives.
private final class DecryptingDownload: HTTPResponseHandler {
    let identity: ObjectIdentity
    let encryptor: ObjectEncryptor
    let sink: OutputSink
    private(set) var decryptor: ObjectDecryptor?

    init(identity: ObjectIdentity, encryptor: ObjectEncryptor, sink: OutputSink) {
        self.identity = identity
        self.encryptor = encryptor
        self.sink = sink
    }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        guard status == 200 else {
            throw DecryptCommand.Failure(message: status == 404 ? "no such object on the backend (404)" : "the backend answered \(status)")
        }
        let lengthText = headers.first { $0.name.lowercased() == "content-length" }?.value
        decryptor = try ObjectDecryptor(headers: headers, storedLength: lengthText.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) },
                                        identity: identity, encryptor: encryptor)
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        guard let decryptor else { throw DecryptCommand.Failure(message: "body before headers") }
        try decryptor.update(bytes, emit: sink.write)
    }
}

/// Decrypts one stored object as a stream, whatever its layout: plain objects pass through,
/// single-part objects are checked against their stored length first, multipart objects are
/// walked part by part. Only verified plaintext reaches `emit`.
final class ObjectDecryptor {
    private enum State {
        case plain
        case single(ChunkOpener)
        case multipart(MultipartOpener)
    }

    private let state: State
    private let storedLength: Int?
    private var received = 0
    /// Whether the object had gateway metadata.
    let isEncrypted: Bool

    /// - Parameter storedLength: the stored (ciphertext) size when known; a single-part object's
    ///   size is validated against its chunk layout before any byte is decrypted.
    init(headers: [(name: String, value: String)], storedLength: Int?, identity: ObjectIdentity,
         encryptor: ObjectEncryptor) throws {
        self.storedLength = storedLength
        guard let metadata = try EncryptionMetadata.parse(fields: headers) else {
            state = .plain
            isEncrypted = false
            return
        }
        isEncrypted = true
        switch metadata.layout {
        case .single:
            if let storedLength { _ = try metadata.chunkLayout.plaintextLength(ciphertextLength: storedLength) }
            state = .single(try encryptor.opener(for: metadata, identity: identity))
        case .multipart:
            state = .multipart(try MultipartOpener(encryptor: encryptor, metadata: metadata, identity: identity))
        }
    }

    func update(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        received += bytes.count
        if let storedLength, received > storedLength {
            throw EncryptionError(.trailingData, "more bytes than the stored length \(storedLength)")
        }
        switch state {
        case .plain: try emit(bytes)
        case .single(let opener): try opener.update(bytes, emit: emit)
        case .multipart(let opener): try opener.update(bytes, emit: emit)
        }
    }

    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let storedLength, received != storedLength {
            throw EncryptionError(.truncated, "received \(received) of \(storedLength) stored bytes")
        }
        switch state {
        case .plain: break
        case .single(let opener): try opener.finish(lastChunkIsFinal: true, emit: emit)
        case .multipart(let opener): try opener.finish()
        }
    }
}

/// The metadata file of `decrypt --input`: a JSON object mapping each `x-amz-meta-*` header name
/// (as the backend returns it, lowercase) to its string value, e.g.
/// `{"x-amz-meta-s3eg-version": "1", "x-amz-meta-s3eg-cipher": "AES-256-GCM", ...}`.
/// Other user metadata may be present and is ignored.
enum MetadataDocument {
    static let maxSize = 64 << 10

    /// The document for an object's headers: every `x-amz-meta-*` header, names lowercased, sorted.
    static func json(headers: [(name: String, value: String)]) -> String {
        let meta = headers.map { (name: $0.name.lowercased(), value: $0.value) }
            .filter { $0.name.hasPrefix("x-amz-meta-") }
            .sorted { $0.name < $1.name }
        guard !meta.isEmpty else { return "{}" }
        return "{\n" + meta.map { "  \(JSON.quote($0.name)): \(JSON.quote($0.value))" }.joined(separator: ",\n") + "\n}"
    }

    /// Parses a document: a JSON object whose values are all strings (at most `maxSize` bytes).
    static func parse(_ bytes: [UInt8]) throws(DecryptCommand.Failure) -> [(name: String, value: String)] {
        guard bytes.count <= maxSize else { throw .init(message: "metadata file is larger than \(maxSize) bytes") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)), let dict = object as? [String: Any] else {
            throw .init(message: "metadata file is not a JSON object (see decrypt --print-metadata)")
        }
        var out: [(name: String, value: String)] = []
        for (name, value) in dict.sorted(by: { $0.key < $1.key }) {
            guard let text = value as? String else { throw .init(message: "metadata value of \(JSON.quote(name)) is not a string") }
            out.append((name: name, value: text))
        }
        return out
    }

    static func read(path: String) throws(DecryptCommand.Failure) -> [(name: String, value: String)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .init(message: "cannot read the metadata file \(path)")
        }
        return try parse(Array(data))
    }
}

/// Where plaintext goes: standard output, or `FILE.partial` renamed to `FILE` on success.
final class OutputSink {
    let path: String?
    let partialPath: String?
    private var fd: Int32
    private var open = true

    var isFile: Bool { path != nil }

    init(path: String?) throws {
        if let path, path != "-" {
            self.path = path
            let partial = path + ".partial"
            partialPath = partial
            // 0600: the output is plaintext.
            fd = Glibc.open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw DecryptCommand.Failure(message: "cannot create \(partial): \(String(cString: strerror(errno)))") }
        } else {
            self.path = nil
            partialPath = nil
            fd = STDOUT_FILENO
        }
    }

    deinit {
        if open && isFile { close(fd) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw DecryptCommand.Failure(message: "writing \(partialPath ?? "standard output"): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    func commit() throws {
        guard let path, let partialPath, open else { return }
        guard fsync(fd) == 0 else { throw DecryptCommand.Failure(message: "fsync \(partialPath): \(String(cString: strerror(errno)))") }
        close(fd)
        open = false
        guard rename(partialPath, path) == 0 else {
            throw DecryptCommand.Failure(message: "renaming \(partialPath) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    func discard() {
        guard let partialPath else { return }
        if open {
            close(fd)
            open = false
        }
        unlink(partialPath)
    }
}
