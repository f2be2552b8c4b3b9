import COpenSSL
import Glibc

/// A TLS failure with a message an operator can act on (file names, OpenSSL's reason).
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A certificate file or PEM block is missing, unreadable or not a certificate.
        case invalidCertificate
        /// The private key is missing, unreadable, encrypted or not a key.
        case invalidKey
        /// The private key does not belong to the certificate.
        case keyMismatch
        /// The CA bundle cannot be loaded.
        case invalidCA
        /// The handshake failed (protocol version, cipher, certificate verification...).
        case handshake
        /// The peer closed the connection (or reset it) where more was expected.
        case closed
        /// No progress within the allowed time.
        case timeout
        /// Connecting (TCP) failed, or any other socket error.
        case io
        /// A TLS protocol error after the handshake.
        case protocolError
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Drains OpenSSL's (thread-local) error queue into one line.
    static func drainOpenSSLErrors() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // "error:0A000086:SSL routines::certificate verify failed" → keep the reason after the last "::"/":".
            let reason = text.split(separator: ":", omittingEmptySubsequences: true).last.map(String.init) ?? text
            if !reasons.contains(reason) { reasons.append(reason) }
        }
        return reasons.isEmpty ? "unknown OpenSSL error" : reasons.joined(separator: "; ")
    }

    static func openssl(_ code: Code, _ what: String) -> TLSError {
        TLSError(code: code, message: "\(what): \(drainOpenSSLErrors())")
    }
}

/// What a certificate says about itself, for logs and reload checks.
public struct TLSCertificateInfo: Sendable, Equatable {
    /// One-line subject, e.g. `/CN=gateway.example.com`.
    public var subject: String
    /// Serial number in upper-case hex.
    public var serial: String
    /// Expiry, Unix seconds.
    public var notAfter: Int64
}

/// Settings of a client-side `TLSContext` (KMIP, or any TLS peer the gateway dials itself).
public struct TLSClientConfiguration: Sendable {
    /// CA bundle file; nil and no `caPEM` means the system's default CAs.
    public var caFile: String?
    /// CA certificates as PEM text.
    public var caPEM: [UInt8]?
    /// Client certificate (chain) and key for mutual TLS, as files...
    public var certificateFile: String?
    public var keyFile: String?
    /// ...or as PEM bytes.
    public var certificatePEM: [UInt8]?
    public var keyPEM: [UInt8]?
    /// Verify the server's certificate chain and name. Never off outside tests.
    public var verifyPeer = true

    public init() {}
}

/// An OpenSSL `SSL_CTX`: protocol versions, ciphers, certificates. Immutable once made and shared by every
/// connection made from it (OpenSSL reference-counts it, so a connection keeps working after its context
/// was replaced by a reload). The C handle never leaves this type and `TLSStream`.
public final class TLSContext: @unchecked Sendable {
    public enum Role: Sendable { case server, client }

    /// TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults, all AEAD).
    public static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        + "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        + "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    let handle: OpaquePointer
    public let role: Role

    private init(handle: OpaquePointer, role: Role) {
        self.handle = handle
        self.role = role
    }

    /// The context's own certificate (server certificate, or client certificate for mutual TLS).
    public var certificate: TLSCertificateInfo? { SSL_CTX_get0_certificate(handle).map(TLSContext.describe) }

    deinit { SSL_CTX_free(handle) }

    /// A server context from a PEM certificate chain (leaf first) and its PEM private key.
    public static func server(certificateFile: String, keyFile: String) throws(TLSError) -> TLSContext {
        let ctx = try makeContext(TLS_server_method())
        let context = TLSContext(handle: ctx, role: .server)  // frees ctx on any error below
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(ctx, certificateFile) == 1 else {
            throw TLSError.openssl(.invalidCertificate, "cannot load the certificate chain from \(certificateFile)")
        }
        let key = try readPrivateKey(file: keyFile)
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(ctx, key) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError.openssl(.keyMismatch, "the private key in \(keyFile) does not match the certificate in \(certificateFile)")
        }
        return context
    }

    /// A client context: verifies the server against `caFile`/`caPEM` (or the system CAs), optionally
    /// presenting a client certificate.
    public static func client(_ configuration: TLSClientConfiguration) throws(TLSError) -> TLSContext {
        let ctx = try makeContext(TLS_client_method())
        let context = TLSContext(handle: ctx, role: .client)  // frees ctx on any error below
        ERR_clear_error()
        if configuration.verifyPeer {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if configuration.caFile == nil && configuration.caPEM == nil {
                guard SSL_CTX_set_default_verify_paths(ctx) == 1 else {
                    throw TLSError.openssl(.invalidCA, "cannot load the system CA certificates")
                }
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        if let caFile = configuration.caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw TLSError.openssl(.invalidCA, "cannot load CA certificates from \(caFile)")
            }
        }
        if let pem = configuration.caPEM {
            let certs = try readCertificates(pem, what: "CA certificates")
            defer { certs.forEach { X509_free($0) } }
            let store = SSL_CTX_get_cert_store(ctx)
            for cert in certs where X509_STORE_add_cert(store, cert) != 1 {
                throw TLSError.openssl(.invalidCA, "cannot add a CA certificate")
            }
        }
        if let file = configuration.certificateFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, file) == 1 else {
                throw TLSError.openssl(.invalidCertificate, "cannot load the client certificate chain from \(file)")
            }
        } else if let pem = configuration.certificatePEM {
            let certs = try readCertificates(pem, what: "client certificate")
            defer { certs.forEach { X509_free($0) } }
            guard SSL_CTX_use_certificate(ctx, certs[0]) == 1 else {
                throw TLSError.openssl(.invalidCertificate, "cannot use the client certificate")
            }
            for extra in certs.dropFirst() {
                // add0 takes ownership on success; the deferred free must then skip it.
                X509_up_ref(extra)
                if copenssl_ctx_add0_chain_cert(ctx, extra) != 1 {
                    X509_free(extra)
                    throw TLSError.openssl(.invalidCertificate, "cannot add a client chain certificate")
                }
            }
        }
        if let file = configuration.keyFile {
            guard SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) == 1 else {
                throw TLSError.openssl(.invalidKey, "cannot load the client key from \(file) (PEM, unencrypted)")
            }
        } else if let pem = configuration.keyPEM {
            let key = try readPrivateKey(pem)
            defer { EVP_PKEY_free(key) }
            guard SSL_CTX_use_PrivateKey(ctx, key) == 1 else {
                throw TLSError.openssl(.invalidKey, "cannot use the client key")
            }
        }
        let hasCertificate = configuration.certificateFile != nil || configuration.certificatePEM != nil
        let hasKey = configuration.keyFile != nil || configuration.keyPEM != nil
        guard hasCertificate == hasKey else {
            throw TLSError(code: .invalidKey, message: "a client certificate needs its key and a key its certificate")
        }
        if hasCertificate {
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSError.openssl(.keyMismatch, "the client key does not match the client certificate")
            }
        }
        return context
    }

    /// Versions, ciphers and modes every context shares.
    private static func makeContext(_ method: OpaquePointer?) throws(TLSError) -> OpaquePointer {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(method) else { throw TLSError.openssl(.protocolError, "SSL_CTX_new") }
        _ = copenssl_ctx_set_min_proto(ctx, TLS1_2_VERSION)
        _ = SSL_CTX_set_options(ctx, copenssl_op_no_renegotiation() | copenssl_op_no_compression()
            | copenssl_op_ignore_unexpected_eof() | copenssl_op_cipher_server_preference())
        guard SSL_CTX_set_cipher_list(ctx, tls12Ciphers) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSError.openssl(.protocolError, "SSL_CTX_set_cipher_list")
        }
        _ = copenssl_ctx_set1_groups_list(ctx, "X25519:P-256:P-384")
        // Partial writes for non-blocking sockets; idle connections give their 34 KiB of record buffers back.
        _ = copenssl_ctx_set_mode(ctx, copenssl_mode_partial_write() | copenssl_mode_release_buffers())
        return ctx
    }

    private static func readCertificates(_ pem: [UInt8], what: String) throws(TLSError) -> [OpaquePointer] {
        var certs: [OpaquePointer] = []
        pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return }
            defer { BIO_free(bio) }
            while let cert = PEM_read_bio_X509(bio, nil, nil, nil) { certs.append(cert) }
        }
        ERR_clear_error()  // the loop ends on a "no start line" error
        guard !certs.isEmpty else {
            throw TLSError(code: what.hasPrefix("CA") ? .invalidCA : .invalidCertificate,
                           message: "no PEM certificate found in the \(what)")
        }
        return certs
    }

    private static func readPrivateKey(file: String) throws(TLSError) -> OpaquePointer {
        guard let bio = BIO_new_file(file, "r") else {
            throw TLSError.openssl(.invalidKey, "cannot read the private key file \(file)")
        }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw TLSError.openssl(.invalidKey, "no usable private key in \(file) (PEM, unencrypted)")
        }
        return key
    }

    private static func readPrivateKey(_ pem: [UInt8]) throws(TLSError) -> OpaquePointer {
        let key: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let key else { throw TLSError.openssl(.invalidKey, "cannot read the client key (PEM, unencrypted)") }
        return key
    }

    static func describe(_ cert: OpaquePointer) -> TLSCertificateInfo {
        var subject = ""
        if let name = X509_get_subject_name(cert), let text = X509_NAME_oneline(name, nil, 0) {
            subject = String(cString: text)
            CRYPTO_free(text, #fileID, #line)
        }
        var serial = ""
        if let asn1 = X509_get_serialNumber(cert), let bn = ASN1_INTEGER_to_BN(asn1, nil) {
            if let hex = BN_bn2hex(bn) {
                serial = String(cString: hex)
                CRYPTO_free(hex, #fileID, #line)
            }
            BN_free(bn)
        }
        var notAfter: Int64 = 0
        if let time = X509_get0_notAfter(cert) {
            var parts = tm()
            if ASN1_TIME_to_tm(time, &parts) == 1 { notAfter = Int64(timegm(&parts)) }
        }
        ERR_clear_error()
        return TLSCertificateInfo(subject: subject, serial: serial, notAfter: notAfter)
    }
}
