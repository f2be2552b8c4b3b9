import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// The aws-kms provider against moto's KMS server (real AES-GCM under the encryption context), with
/// IAM authentication on, so SigV4 signatures are verified and access can be revoked.
@Suite(.serialized) struct AWSKMSKeyProviderTests {
    let secret = (0..<32).map { UInt8($0 + 100) }

    @Test func signedEncryptDecryptBindsTheContext() throws {
        let kms = try MotoKMS()
        let provider = try AWSKMSKeyProvider(settings: kms.settings())
        try provider.checkHealth(keyName: kms.keyID)
        let context = KeyManagerContext.object(bucket: "photos", key: "cat.jpg")
        let wrapped = try provider.wrap(secret, keyName: kms.keyID, context: context)
        #expect(wrapped.keyID == kms.keyARN)
        #expect(try provider.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context) == secret)
        do {
            _ = try provider.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: .object(bucket: "photos", key: "dog.jpg"))
            Issue.record("opened under another object's context")
        } catch {
            #expect(error.code == .invalidCiphertext)
        }
        #expect(try provider.isCurrent(keyID: kms.keyARN, keyName: kms.keyID))

        // An alias resolves to its key's ARN.
        try kms.adminKMS("CreateAlias", ["AliasName": "alias/s3eg", "TargetKeyId": kms.keyID])
        let byAlias = try AWSKMSKeyProvider(settings: kms.settings(keyID: "alias/s3eg"))
        #expect(try byAlias.wrap(secret, keyName: "alias/s3eg", context: context).keyID == kms.keyARN)
        #expect(try byAlias.isCurrent(keyID: kms.keyARN, keyName: "alias/s3eg"))
        #expect(try AWSKMSKeyProvider(settings: kms.settings(keyID: "alias/s3eg")).isCurrent(keyID: kms.keyARN, keyName: "alias/s3eg"))
    }

    @Test func badCredentialsAndRevokedAccessAreDenied() throws {
        let kms = try MotoKMS()
        let provider = try AWSKMSKeyProvider(settings: kms.settings())
        let context = KeyManagerContext.bucket("b")
        let wrapped = try provider.wrap(secret, keyName: kms.keyID, context: context)
        let wrongSecret = try AWSKMSKeyProvider(settings: kms.settings(secretKey: "not-the-secret"))
        do {
            _ = try wrongSecret.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context)
            Issue.record("unwrapped with a wrong secret key")
        } catch {
            #expect(error.code == .denied)
        }
        try kms.revokeGatewayAccess()
        do {
            _ = try provider.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context)
            Issue.record("unwrapped after the access was revoked")
        } catch {
            #expect(error.code == .denied)
        }
    }

    @Test func anUnreachableKMSIsUnavailable() throws {
        let provider = try AWSKMSKeyProvider(settings: AWSKMSSettings(keyID: "k", region: "us-east-1",
                                                                      endpoint: "http://127.0.0.1:\(try freePort())",
                                                                      accessKeyID: "a", secretAccessKey: "s"), timeout: .seconds(2))
        do {
            try provider.checkHealth(keyName: "k")
            Issue.record("healthy without a server")
        } catch {
            #expect(error.code == .unavailable)
        }
        #expect(throws: KeyProviderError.self) {
            try AWSKMSKeyProvider(settings: AWSKMSSettings(keyID: "k", region: "us-east-1", endpoint: "ftp://x/y", accessKeyID: "a", secretAccessKey: "s"))
        }
    }

    @Test func errorAnswersMapToCodes() {
        func code(_ type: String, _ status: Int = 400) -> KeyProviderError.Code {
            AWSKMSKeyProvider.error(action: "Decrypt", status: status, json: ["__type": "com.amazonaws.kms#\(type)", "message": "m"], body: []).code
        }
        #expect(code("DisabledException") == .denied)
        #expect(code("KMSInvalidStateException") == .denied)
        #expect(code("InvalidCiphertextException") == .invalidCiphertext)
        #expect(code("ThrottlingException") == .unavailable)
        #expect(code("KMSInternalException", 500) == .unavailable)
        #expect(code("SomethingNew", 503) == .unavailable)
        #expect(AWSKMSKeyProvider.error(action: "Decrypt", status: 403, json: nil, body: Array("<xml/>".utf8)).code == .denied)
    }
}
