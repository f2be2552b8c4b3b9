import Foundation
import Shared

/// `s3-encryption-gateway rotate`: re-wraps the data keys of encrypted objects under a target key
/// (any provider; by default the key the policy gives the bucket) without touching their ciphertext,
/// by a backend server-side copy of each object onto itself that replaces only its metadata
/// (docs/FORMAT.md §8, docs/keys.md §5).
enum RotateCommand {
    static let usage = """
        usage: s3-encryption-gateway rotate --bucket BUCKET [--to KEYNAME] [--prefix PREFIX] [--resume-after KEY] [--dry-run] [--page-size N]

        Re-wraps the data keys of the encrypted objects in BUCKET (under PREFIX) with a target key: the key
        the policy file gives the bucket (the default key, ENCRYPTION_KEY_PROVIDER, without a policy), or the
        key named by --to. The keys objects are wrapped with now must be configured too (any provider:
        raw, password, kmip, aws-kms, vault-transit; older raw keys in ENCRYPTION_PREVIOUS_KEY_FILES, older
        passwords in ENCRYPTION_PREVIOUS_PASSWORDS). Object bodies are not re-encrypted: each object is copied
        onto itself on the backend with its metadata replaced, only if it was not overwritten meanwhile
        (x-amz-copy-source-if-match). Within one key manager an intermediate key keeps its value and is
        re-wrapped by the key manager (Vault rewrap), once for all the objects that share it. Plain objects
        and objects already under the target key's current version are left alone, so running it again
        changes nothing.

        options:
          --bucket BUCKET       bucket to rotate (required)
          --to KEYNAME          target: a key named in ENCRYPTION_POLICY_FILE, or "default"
          --prefix PREFIX       only keys starting with PREFIX
          --resume-after KEY    start after KEY (the last key a previous run printed)
          --dry-run             report what would be re-wrapped, change nothing
          --page-size N         keys per listing request, 1 to 1000 (default 1000)

        environment: the gateway's key settings (ENCRYPTION_KEY_PROVIDER, ENCRYPTION_KEY_FILE, ENCRYPTION_PASSWORD,
        KMIP_*, AWS_KMS_*, VAULT_*, ENCRYPTION_POLICY_FILE; docs/keys.md) and BACKEND_ENDPOINT, BACKEND_REGION,
        BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY, BACKEND_CA_FILE, BACKEND_TLS_INSECURE_SKIP_VERIFY.

        output: one JSON line per object on stdout ({"key":…,"result":"rotated|current|plain|too-large|failed",…}),
        then a summary line ({"summary":true,…,"last_key":…}); progress lines on stderr.
        exit codes: 0 every encrypted object is under the target key, 1 some objects failed or were
        skipped (listed with result "failed" or "too-large"), 2 bad flags or configuration.

        """

    struct Options: Equatable {
        var bucket: String
        var prefix: String?
        var resumeAfter: String?
        var dryRun = false
        var pageSize = 1000
        /// A key name of the policy (`default` included); nil: the policy's key for the bucket.
        var to: String?

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            let flags = try CommandFlags(arguments, valued: ["--bucket", "--prefix", "--resume-after", "--page-size", "--to"],
                                         boolean: ["--dry-run"])
            var options = Options(bucket: try flags.required("--bucket"), prefix: flags["--prefix"],
                                  resumeAfter: flags["--resume-after"], dryRun: flags.has("--dry-run"))
            if let to = flags["--to"] {
                guard !to.isEmpty else { throw UsageError(message: "--to needs a key name") }
                options.to = to
            }
            if let text = flags["--page-size"] {
                guard let n = Int(text), (1...1000).contains(n) else {
                    throw UsageError(message: "--page-size must be a whole number from 1 to 1000, got \(JSON.quote(text))")
                }
                options.pageSize = n
            }
            return options
        }
    }

    /// S3's limit for CopyObject (and so for a metadata-replacing self-copy).
    static let maxCopySize = 5 * 1024 * 1024 * 1024

    /// What to do with one object, decided from its HEAD.
    enum Decision: Equatable {
        /// No gateway metadata: stored unencrypted, nothing to re-wrap.
        case plain
        /// Already wrapped with the active key.
        case current
        /// Needs a re-wrap but is too large for a server-side copy.
        case tooLarge(size: Int)
        /// Needs a re-wrap: the metadata to store.
        case rewrap(EncryptionMetadata)
    }

    /// Decides from the object's headers and size. Unwrapping errors (unknown key id, tampering) are thrown.
    static func decide(headers: [(name: String, value: String)], size: Int, identity: ObjectIdentity,
                       encryptor: ObjectEncryptor) throws(EncryptionError) -> Decision {
        guard let metadata = try EncryptionMetadata.parse(fields: headers) else { return .plain }
        // Version 1 objects are re-wrapped even under the target key: that upgrades their metadata to version 2.
        if metadata.version == .current && encryptor.keys.isActive(metadata.keyReference) { return .current }
        if size > maxCopySize { return .tooLarge(size: size) }
        return .rewrap(try encryptor.rewrap(metadata, from: identity, to: identity))
    }

    /// Standard headers a metadata-replacing copy must send again, or the copy would drop them.
    static let preservedHeaders: Set<String> = [
        "content-type", "content-encoding", "content-disposition", "content-language", "cache-control", "expires",
        "x-amz-website-redirect-location", "x-amz-storage-class", "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-bucket-key-enabled",
    ]

    /// The headers of the self-copy: every preserved standard header and user metadata header of the
    /// HEAD answer, with the gateway's headers replaced by `rewrapped`'s.
    static func copyHeaders(head: [(name: String, value: String)], rewrapped: EncryptionMetadata) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        for (name, value) in head {
            let lower = name.lowercased()
            if EncryptionMetadata.isReserved(headerName: lower) { continue }
            if preservedHeaders.contains(lower) || lower.hasPrefix("x-amz-meta-") {
                out.append((name: lower, value: value))
            }
        }
        for (name, value) in rewrapped.headers.sorted(by: { $0.key < $1.key }) {
            out.append((name: name, value: value))
        }
        return out
    }

    /// Counts of one run.
    struct Tally: Equatable {
        var examined = 0
        var rotated = 0
        var current = 0
        var plain = 0
        var tooLarge = 0
        var failed = 0
        var lastKey: String?

        var exitCode: Int32 { failed + tooLarge == 0 ? 0 : 1 }
    }

    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(usage, terminator: "")
            return 0
        }
        let options: Options
        let backend: BackendClient
        let keys: KeyService
        do {
            options = try Options.parse(arguments)
        } catch {
            Console.error("s3-encryption-gateway rotate: \(error.message)\n\n\(usage)")
            return 2
        }
        do {
            backend = try ToolSettings.backendClient(environment: environment)
            keys = try ToolSettings.keys(environment: environment).service
        } catch {
            Console.error("s3-encryption-gateway rotate: \(error)")
            return 2
        }
        let target: KeySpec
        let policy = keys.policy
        if let name = options.to {
            guard let spec = policy.keys[name] else {
                Console.error("s3-encryption-gateway rotate: --to \(JSON.quote(name)) is not a key of the policy file (known: \(policy.keys.keys.sorted().joined(separator: ", ")))")
                return 2
            }
            target = spec
        } else if case .encrypt(let spec, _) = policy.decision(bucket: options.bucket) {
            target = spec
        } else {
            target = policy.defaultKey
        }
        let encryptor = ObjectEncryptor(keys: RotationKeys(service: keys, target: target))
        let tally = rotate(options: options, backend: backend, encryptor: encryptor)
        var summary = "{\"summary\":true,\"dry_run\":\(options.dryRun),\"examined\":\(tally.examined),"
        summary += "\"\(options.dryRun ? "would_rotate" : "rotated")\":\(tally.rotated),\"current\":\(tally.current),"
        summary += "\"plain\":\(tally.plain),\"too_large\":\(tally.tooLarge),\"failed\":\(tally.failed),"
        summary += "\"target_key\":\(JSON.quote(target.description)),"
        summary += "\"active_key_id\":\(JSON.quote(keys.local[target.provider]?.active.idHex ?? target.name)),\"last_key\":\(tally.lastKey.map(JSON.quote) ?? "null")}"
        Console.out(summary)
        if tally.exitCode != 0 {
            Console.error("rotate: \(tally.failed) object(s) failed and \(tally.tooLarge) were too large to copy (see the \"failed\" and \"too-large\" lines); fix the cause and run again (it only touches objects not yet under the target key)")
        }
        return tally.exitCode
    }

    /// Walks the listing and handles each object; never stops at a per-object failure.
    static func rotate(options: Options, backend: BackendClient, encryptor: ObjectEncryptor) -> Tally {
        var tally = Tally()
        var token: String?
        repeat {
            let page: ListObjectsPage
            do {
                page = try backend.listObjectsV2(bucket: options.bucket, prefix: options.prefix,
                                                 startAfter: token == nil ? options.resumeAfter : nil, continuationToken: token,
                                                 maxKeys: options.pageSize)
            } catch {
                tally.failed += 1
                let resume = tally.lastKey.map { " --resume-after \(JSON.quote($0))" } ?? ""
                Console.out("{\"result\":\"failed\",\"listing\":true,\"error\":\(JSON.quote(error.description))}")
                Console.error("rotate: listing \(options.bucket) failed: \(error); rerun with the same flags\(resume)")
                return tally
            }
            for entry in page.entries {
                let outcome = handle(entry: entry, bucket: options.bucket, dryRun: options.dryRun, backend: backend, encryptor: encryptor)
                tally.examined += 1
                tally.lastKey = entry.key
                var line = "{\"key\":\(JSON.quote(entry.key)),\"result\":\(JSON.quote(outcome.result))"
                switch outcome {
                case .rotated(let from, let to):
                    tally.rotated += 1
                    line += ",\"from_key_id\":\(JSON.quote(from)),\"to_key_id\":\(JSON.quote(to))"
                case .current: tally.current += 1
                case .plain: tally.plain += 1
                case .tooLarge(let size):
                    tally.tooLarge += 1
                    line += ",\"size\":\(size),\"error\":\(JSON.quote("larger than 5 GiB: S3 cannot copy it onto itself; keep its current key configured, or re-upload it through the gateway"))"
                case .failed(let message):
                    tally.failed += 1
                    line += ",\"error\":\(JSON.quote(message))"
                }
                Console.out(line + "}")
                if tally.examined % 100 == 0 {
                    Console.error("\(options.dryRun ? "would rotate" : "rotated") \(tally.rotated) of \(tally.examined) objects examined, last key: \(entry.key)")
                }
            }
            token = page.isTruncated ? page.nextContinuationToken : nil
        } while token != nil
        Console.error("\(options.dryRun ? "would rotate" : "rotated") \(tally.rotated) of \(tally.examined) objects examined (\(tally.current) already current, \(tally.plain) plain, \(tally.failed) failed, \(tally.tooLarge) too large)\(tally.lastKey.map { ", last key: \($0)" } ?? "")")
        return tally
    }

    enum Outcome: Equatable {
        case rotated(fromKeyID: String, toKeyID: String)
        case current
        case plain
        case tooLarge(size: Int)
        case failed(String)

        var result: String {
            switch self {
            case .rotated: return "rotated"
            case .current: return "current"
            case .plain: return "plain"
            case .tooLarge: return "too-large"
            case .failed: return "failed"
            }
        }
    }

    static func handle(entry: ListObjectsPage.Entry, bucket: String, dryRun: Bool, backend: BackendClient,
                       encryptor: ObjectEncryptor) -> Outcome {
        let head: HTTPClientResponse
        do {
            head = try backend.headObject(bucket: bucket, key: entry.key)
        } catch {
            return .failed(error.status == 404 ? "deleted during rotation (nothing to do; run again to confirm)" : error.description)
        }
        // The HEAD's length, not the listing's: the object may have been overwritten in between.
        let size = head.header("content-length").flatMap { Int($0) } ?? entry.size
        let identity = ObjectIdentity(bucket: bucket, key: entry.key)
        let decision: Decision
        do {
            decision = try decide(headers: head.headers, size: size, identity: identity, encryptor: encryptor)
        } catch {
            return .failed(error.description)
        }
        switch decision {
        case .plain: return .plain
        case .current: return .current
        case .tooLarge(let size): return .tooLarge(size: size)
        case .rewrap(let metadata):
            let from = head.header(FormatV1.keyIDHeader) ?? "?"  // v1 and v2 both record it
            let to = metadata.keyReference.keyID
            if dryRun { return .rotated(fromKeyID: from, toKeyID: to) }
            guard let etag = head.header("etag"), !etag.isEmpty else {
                return .failed("the backend's HEAD has no ETag, so the copy cannot be made conditional")
            }
            do {
                try backend.copyObjectOntoItself(bucket: bucket, key: entry.key,
                                                 headers: copyHeaders(head: head.headers, rewrapped: metadata), ifMatch: etag)
            } catch {
                if error.status == 412 {
                    return .failed("overwritten during rotation (copy precondition failed); run again to check it")
                }
                return .failed(error.description)
            }
            return .rotated(fromKeyID: from, toKeyID: to)
        }
    }
}
