import Foundation
import Shared

/// A key-encryption key held in the gateway's memory (`raw` or `password`). It wraps data keys
/// directly (AES-256-GCM); its public id (8 bytes, 16 hex digits in metadata) is derived by HKDF
/// and reveals nothing about the key.
public struct LocalKey: Sendable {
    public let kind: KeyProviderKind
    public let id: [UInt8]
    let bytes: [UInt8]

    public var idHex: String { Encoding.hex(id) }

    static let rawKeyIDInfo = Array("s3eg raw key-id".utf8)

    /// A `raw` key: 32 bytes used as they are; id = HKDF-SHA256(key, salt "", info "s3eg raw key-id", 8).
    public static func raw(_ bytes: [UInt8]) throws(KeyProviderError) -> LocalKey {
        guard bytes.count == 32 else { throw KeyProviderError(.misconfigured, "a raw key has 32 bytes, got \(bytes.count)") }
        do {
            let id = try KDF.hkdfSHA256(key: bytes, salt: [], info: rawKeyIDInfo, length: 8)
            return LocalKey(kind: .raw, id: id, bytes: bytes)
        } catch {
            throw KeyProviderError(.misconfigured, "HKDF failed: \(error)")
        }
    }

    /// A `password` key: scrypt (N=2^15, r=8, p=1) then HKDF as in format version 1 (docs/FORMAT.md §2),
    /// with `salt` instead of the fixed public salt when a deployment salt is configured.
    /// About 100 ms and 32 MiB: call at start-up only.
    public static func password(_ password: String, salt: [UInt8]? = nil) throws(KeyProviderError) -> LocalKey {
        do {
            let kek: KeyEncryptionKey
            if let salt {
                let master = try KDF.scrypt(password: Array(password.utf8), salt: salt, n: FormatV1.scryptN,
                                            r: FormatV1.scryptR, p: FormatV1.scryptP, length: 32)
                kek = try KeyEncryptionKey.derive(master: master)
            } else {
                kek = try KeyEncryptionKey.derive(password: password)
            }
            return LocalKey(kind: .password, id: kek.id, bytes: kek.key)
        } catch {
            throw KeyProviderError(.misconfigured, "password key derivation failed: \(error)")
        }
    }
}

/// The local keys of one kind: the active key wraps new data keys; every key unwraps.
public struct LocalKeyring: Sendable {
    public let kind: KeyProviderKind
    public let active: LocalKey
    /// Every key, active first, unique ids.
    public let keys: [LocalKey]

    /// `previous` keys equal to an earlier one are dropped; two different keys with one id are refused.
    public init(active: LocalKey, previous: [LocalKey] = []) throws(KeyProviderError) {
        var keys = [active]
        for key in previous {
            guard key.kind == active.kind else {
                throw KeyProviderError(.misconfigured, "a \(active.kind) keyring cannot hold a \(key.kind) key")
            }
            if let existing = keys.first(where: { $0.id == key.id }) {
                guard existing.bytes == key.bytes else {
                    throw KeyProviderError(.misconfigured, "two configured \(key.kind) keys share the key id \(key.idHex)")
                }
                continue
            }
            keys.append(key)
        }
        self.kind = active.kind
        self.active = active
        self.keys = keys
    }

    public func key(id: [UInt8]) -> LocalKey? { keys.first { $0.id == id } }

    public func key(idHex: String) -> LocalKey? { Encoding.fromHex(idHex).flatMap { key(id: $0) } }
}

/// Reads a raw key file: 64 hex digits or the base64 of 32 bytes, surrounding whitespace ignored.
/// Errors never quote the file's content.
public enum RawKeyFile {
    public static func parse(_ data: [UInt8]) throws(KeyProviderError) -> [UInt8] {
        guard data.count <= 4096 else { throw KeyProviderError(.misconfigured, "the key file is larger than 4 KiB; it must hold 64 hex digits or 44 base64 characters") }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.utf8.count == 64, let bytes = Encoding.fromHex(text) { return bytes }
        if let decoded = Data(base64Encoded: text), decoded.count == 32 { return Array(decoded) }
        var urlSafe = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while urlSafe.utf8.count % 4 != 0 { urlSafe += "=" }
        if let decoded = Data(base64Encoded: urlSafe), decoded.count == 32 { return Array(decoded) }
        throw KeyProviderError(.misconfigured, "the key file must hold exactly 32 bytes as 64 hex digits or as base64 (create one with `openssl rand -hex 32`); it holds \(text.utf8.count) characters of something else")
    }

    public static func read(path: String) throws(KeyProviderError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyProviderError(.misconfigured, "cannot read the key file \(JSON.quote(path))")
        }
        return try parse(Array(data))
    }
}
