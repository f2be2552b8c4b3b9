/// The KMIP 1.4 tags, enumerations and messages the gateway uses (OASIS KMIP Specification v1.4),
/// built and read as TTLV values. Pure: no I/O.
enum KMIPTag {
    static let attribute: UInt32 = 0x420008
    static let attributeName: UInt32 = 0x42000A
    static let attributeValue: UInt32 = 0x42000B
    static let batchCount: UInt32 = 0x42000D
    static let batchItem: UInt32 = 0x42000F
    static let blockCipherMode: UInt32 = 0x420011
    static let cryptographicAlgorithm: UInt32 = 0x420028
    static let cryptographicParameters: UInt32 = 0x42002B
    static let ivCounterNonce: UInt32 = 0x42003D
    static let operation: UInt32 = 0x42005C
    static let protocolVersion: UInt32 = 0x420069
    static let protocolVersionMajor: UInt32 = 0x42006A
    static let protocolVersionMinor: UInt32 = 0x42006B
    static let requestHeader: UInt32 = 0x420077
    static let requestMessage: UInt32 = 0x420078
    static let requestPayload: UInt32 = 0x420079
    static let responseHeader: UInt32 = 0x42007A
    static let responseMessage: UInt32 = 0x42007B
    static let responsePayload: UInt32 = 0x42007C
    static let resultMessage: UInt32 = 0x42007D
    static let resultReason: UInt32 = 0x42007E
    static let resultStatus: UInt32 = 0x42007F
    static let timeStamp: UInt32 = 0x420092
    static let uniqueIdentifier: UInt32 = 0x420094
    static let data: UInt32 = 0x4200C2
    static let tagLength: UInt32 = 0x4200CE
    static let authenticatedEncryptionAdditionalData: UInt32 = 0x4200FE
    static let authenticatedEncryptionTag: UInt32 = 0x4200FF
}

enum KMIPOperation: UInt32, Sendable {
    case getAttributes = 0x0B
    case encrypt = 0x1F
    case decrypt = 0x20

    var name: String {
        switch self {
        case .getAttributes: return "GetAttributes"
        case .encrypt: return "Encrypt"
        case .decrypt: return "Decrypt"
        }
    }
}

/// KMIP Result Reason values the gateway tells apart (§9.1.3.2.29).
enum KMIPResultReason: UInt32 {
    case itemNotFound = 0x01
    case authenticationNotSuccessful = 0x03
    case invalidMessage = 0x04
    case operationNotSupported = 0x05
    case invalidField = 0x07
    case featureNotSupported = 0x08
    case cryptographicFailure = 0x0A
    case illegalOperation = 0x0B
    case permissionDenied = 0x0C
    case objectArchived = 0x0D
    case generalFailure = 0x100
}

/// KMIP object states (§9.1.3.2.17).
enum KMIPState: UInt32 {
    case preActive = 1, active = 2, deactivated = 3, compromised = 4, destroyed = 5, destroyedCompromised = 6

    var name: String {
        switch self {
        case .preActive: return "Pre-Active"
        case .active: return "Active"
        case .deactivated: return "Deactivated"
        case .compromised: return "Compromised"
        case .destroyed: return "Destroyed"
        case .destroyedCompromised: return "Destroyed Compromised"
        }
    }
}

/// Builds request messages and reads response messages (one batch item each).
enum KMIPMessage {
    static let protocolMajor: Int32 = 1
    static let protocolMinor: Int32 = 4
    static let aesAlgorithm: UInt32 = 0x03
    static let gcmMode: UInt32 = 0x09
    static let gcmNonceSize = 12
    static let gcmTagSize = 16

    static func request(_ operation: KMIPOperation, payload: [TTLV]) -> TTLV {
        .structure(KMIPTag.requestMessage, [
            .structure(KMIPTag.requestHeader, [
                .structure(KMIPTag.protocolVersion, [
                    TTLV(KMIPTag.protocolVersionMajor, .integer(protocolMajor)),
                    TTLV(KMIPTag.protocolVersionMinor, .integer(protocolMinor)),
                ]),
                TTLV(KMIPTag.batchCount, .integer(1)),
            ]),
            .structure(KMIPTag.batchItem, [
                TTLV(KMIPTag.operation, .enumeration(operation.rawValue)),
                .structure(KMIPTag.requestPayload, payload),
            ]),
        ])
    }

    /// AES-GCM with a 16-byte tag, in the field order of §2.1.5.
    static var gcmParameters: TTLV {
        .structure(KMIPTag.cryptographicParameters, [
            TTLV(KMIPTag.blockCipherMode, .enumeration(gcmMode)),
            TTLV(KMIPTag.cryptographicAlgorithm, .enumeration(aesAlgorithm)),
            TTLV(KMIPTag.tagLength, .integer(Int32(gcmTagSize))),
        ])
    }

    /// Encrypt (§4.29) with AES-GCM under `uid`, our own 12-byte nonce and authenticated data.
    static func encrypt(uid: String, plaintext: [UInt8], nonce: [UInt8], aad: [UInt8]) -> TTLV {
        request(.encrypt, payload: [
            TTLV(KMIPTag.uniqueIdentifier, .textString(uid)),
            gcmParameters,
            TTLV(KMIPTag.data, .byteString(plaintext)),
            TTLV(KMIPTag.ivCounterNonce, .byteString(nonce)),
            TTLV(KMIPTag.authenticatedEncryptionAdditionalData, .byteString(aad)),
        ])
    }

    /// Decrypt (§4.30), the inverse of `encrypt`.
    static func decrypt(uid: String, ciphertext: [UInt8], nonce: [UInt8], aad: [UInt8], tag: [UInt8]) -> TTLV {
        request(.decrypt, payload: [
            TTLV(KMIPTag.uniqueIdentifier, .textString(uid)),
            gcmParameters,
            TTLV(KMIPTag.data, .byteString(ciphertext)),
            TTLV(KMIPTag.ivCounterNonce, .byteString(nonce)),
            TTLV(KMIPTag.authenticatedEncryptionAdditionalData, .byteString(aad)),
            TTLV(KMIPTag.authenticatedEncryptionTag, .byteString(tag)),
        ])
    }

    /// Get Attributes (§4.12) of `uid`, only its State.
    static func getState(uid: String) -> TTLV {
        request(.getAttributes, payload: [
            TTLV(KMIPTag.uniqueIdentifier, .textString(uid)),
            TTLV(KMIPTag.attributeName, .textString("State")),
        ])
    }

    /// The outcome of one request.
    enum Outcome: Equatable {
        case success(payload: TTLV?)
        case failure(reason: UInt32?, message: String)
    }

    /// Reads a response message: one batch item for `operation`.
    static func outcome(of response: TTLV, for operation: KMIPOperation) throws(TTLVError) -> Outcome {
        guard response.tag == KMIPTag.responseMessage, let header = response[KMIPTag.responseHeader] else {
            throw TTLVError("expected a Response Message (0x42007B) with a Response Header")
        }
        let batchCount = header[KMIPTag.batchCount]?.integer
        guard batchCount == 1 else { throw TTLVError("response batch count is not 1") }
        let items = response.children(KMIPTag.batchItem)
        guard items.count == 1 else { throw TTLVError("response has \(items.count) batch items, expected 1") }
        let item = items[0]
        // Copied out first: the release optimizer of Swift 6.3 mis-handles a borrow of the optional chain here.
        let answered: UInt32? = item.children(KMIPTag.operation).first?.enumeration
        if let answered, answered != operation.rawValue {
            throw TTLVError("response is for operation \(answered), expected \(operation.name)")
        }
        let status: UInt32? = item.children(KMIPTag.resultStatus).first?.enumeration
        switch status {
        case 0:
            return .success(payload: item.children(KMIPTag.responsePayload).first)
        case 1, 3:
            let reason: UInt32? = item.children(KMIPTag.resultReason).first?.enumeration
            let message: String = item.children(KMIPTag.resultMessage).first?.text ?? ""
            return .failure(reason: reason, message: message)
        case 2:
            return .failure(reason: nil, message: "the server answered Operation Pending (asynchronous operations are not supported)")
        case nil:
            throw TTLVError("batch item without a Result Status")
        default:
            throw TTLVError("unknown Result Status \(status ?? 0)")
        }
    }

    /// Ciphertext, nonce echo and tag of an Encrypt response.
    static func encryptResult(_ payload: TTLV?) throws(TTLVError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        guard let payload, let data = payload[KMIPTag.data]?.bytes else { throw TTLVError("Encrypt response without Data") }
        guard let tag = payload[KMIPTag.authenticatedEncryptionTag]?.bytes, tag.count == gcmTagSize else {
            throw TTLVError("Encrypt response without a 16-byte Authenticated Encryption Tag (the server must support KMIP 1.4 AES-GCM)")
        }
        return (data, tag)
    }

    static func decryptResult(_ payload: TTLV?) throws(TTLVError) -> [UInt8] {
        guard let payload, let data = payload[KMIPTag.data]?.bytes else { throw TTLVError("Decrypt response without Data") }
        return data
    }

    static func stateResult(_ payload: TTLV?) throws(TTLVError) -> KMIPState {
        guard let payload else { throw TTLVError("Get Attributes response without a payload") }
        for attribute in payload.children(KMIPTag.attribute) where attribute[KMIPTag.attributeName]?.text == "State" {
            guard let raw = attribute[KMIPTag.attributeValue]?.enumeration, let state = KMIPState(rawValue: raw) else {
                throw TTLVError("State attribute is not a known enumeration value")
            }
            return state
        }
        throw TTLVError("Get Attributes response without the State attribute")
    }
}
