import Foundation
import Shared

/// The policy document of a POST Object form (browser upload): when it expires and the conditions every form
/// field must meet, as S3 defines them. Pure.
///
///     {"expiration": "2030-01-01T00:00:00.000Z",
///      "conditions": [{"bucket": "photos"}, ["starts-with", "$key", "user/"], ["content-length-range", 1, 1048576]]}
struct PostPolicy: Sendable, Equatable {
    enum Condition: Sendable, Equatable {
        /// `{"field": "value"}` or `["eq", "$field", "value"]`.
        case equals(field: String, value: String)
        /// `["starts-with", "$field", "prefix"]`; an empty prefix allows any value.
        case startsWith(field: String, prefix: String)
        /// `["content-length-range", min, max]`: the file's size in bytes.
        case contentLengthRange(min: Int64, max: Int64)

        /// The field the condition constrains (lower-cased, without `$`); nil for the length range.
        var field: String? {
            switch self {
            case .equals(let field, _), .startsWith(let field, _): return field
            case .contentLengthRange: return nil
            }
        }

        /// As S3 prints it in `Policy Condition failed: …`.
        var description: String {
            switch self {
            case .equals(let field, let value): return "[\"eq\", \"$\(field)\", \"\(value)\"]"
            case .startsWith(let field, let prefix): return "[\"starts-with\", \"$\(field)\", \"\(prefix)\"]"
            case .contentLengthRange(let min, let max): return "[\"content-length-range\", \(min), \(max)]"
            }
        }
    }

    /// Unix seconds.
    var expiration: Int64
    var conditions: [Condition]

    static let maxConditions = 128

    /// Form fields that need no condition: the signature and the policy itself, the file, and `x-ignore-*`.
    static func isExempt(field lowercased: String) -> Bool {
        ["policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"].contains(lowercased) || lowercased.hasPrefix("x-ignore-")
    }

    /// Decodes the base64 `policy` field. Throws `InvalidPolicyDocument` for anything S3 would not accept.
    static func parse(base64 text: String) throws(S3Error) -> PostPolicy {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespaces)) else {
            throw invalid("the policy is not base64")
        }
        guard let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw invalid("the policy is not a JSON object")
        }
        guard let expirationText = document["expiration"] as? String, let expiration = parseExpiration(expirationText) else {
            throw invalid("Policy missing expiration, or expiration is not an ISO 8601 UTC time such as 2030-01-01T00:00:00.000Z")
        }
        guard let list = document["conditions"] as? [Any] else { throw invalid("Policy missing conditions") }
        guard list.count <= maxConditions else { throw invalid("more than \(maxConditions) conditions") }
        var conditions: [Condition] = []
        for entry in list {
            if let object = entry as? [String: Any] {
                guard object.count == 1, let (name, value) = object.first, let text = value as? String else {
                    throw invalid("a condition object must have exactly one string member")
                }
                conditions.append(.equals(field: fieldName(name), value: text))
            } else if let array = entry as? [Any], array.count == 3, let operation = array[0] as? String {
                switch operation.lowercased() {
                case "eq", "starts-with":
                    guard let name = array[1] as? String, name.hasPrefix("$"), let value = array[2] as? String else {
                        throw invalid("the condition \(operation) needs a \"$field\" name and a string value")
                    }
                    conditions.append(operation.lowercased() == "eq" ? .equals(field: fieldName(name), value: value)
                                                                     : .startsWith(field: fieldName(name), prefix: value))
                case "content-length-range":
                    guard let min = integer(array[1]), let max = integer(array[2]), min >= 0, min <= max else {
                        throw invalid("content-length-range needs two integers 0 <= min <= max")
                    }
                    conditions.append(.contentLengthRange(min: min, max: max))
                default:
                    throw invalid("unknown condition \(operation.prefix(32))")
                }
            } else {
                throw invalid("a condition must be an object or a 3-element array")
            }
        }
        return PostPolicy(expiration: expiration, conditions: conditions)
    }

    /// `Policy expired` once `now` is past the expiration.
    func checkExpiry(now: Int64) throws(AuthenticationFailure) {
        guard now <= expiration else {
            throw AuthenticationFailure(reason: .expired, error: S3Error.accessDenied("Invalid according to Policy: Policy expired."))
        }
    }

    /// Every condition holds for the form's fields (`bucket` is the request's bucket), and every field that is not
    /// exempt is named by some condition (S3: `Extra input fields`).
    func checkFields(_ fields: [FormField], bucket: String) throws(AuthenticationFailure) {
        func value(_ field: String) -> String {
            field == "bucket" ? bucket : fields.first { $0.name.lowercased() == field }?.value ?? ""
        }
        for condition in conditions {
            let holds: Bool
            switch condition {
            case .equals(let field, let expected):
                holds = value(field) == expected
            case .startsWith(let field, let prefix):
                // Content-Type may list several types; each must match.
                holds = field == "content-type"
                    ? value(field).split(separator: ",", omittingEmptySubsequences: false)
                        .allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasPrefix(prefix) }
                    : value(field).hasPrefix(prefix)
            case .contentLengthRange:
                holds = true  // checked against the file's size (`checkLength`)
            }
            guard holds else { throw Self.denied("Policy Condition failed: \(condition.description)") }
        }
        let covered = Set(conditions.compactMap(\.field))
        let extra = fields.map { $0.name.lowercased() }.filter { !Self.isExempt(field: $0) && !covered.contains($0) }
        guard extra.isEmpty else { throw Self.denied("Extra input fields: \(extra.joined(separator: ", "))") }
    }

    /// The file's size within every `content-length-range`.
    func checkLength(_ length: Int64) throws(S3Error) {
        for case .contentLengthRange(let min, let max) in conditions {
            if length > max { throw S3Error.entityTooLarge() }
            if length < min { throw S3Error.entityTooSmall() }
        }
    }

    // MARK: Helpers

    private static func fieldName(_ name: String) -> String {
        (name.hasPrefix("$") ? String(name.dropFirst()) : name).lowercased()
    }

    private static func integer(_ value: Any) -> Int64? {
        if let number = value as? NSNumber, String(cString: number.objCType) != "c" {  // "c": a JSON true/false
            let double = number.doubleValue
            guard double.rounded() == double, abs(double) < 1e15 else { return nil }
            return Int64(double)
        }
        if let text = value as? String, !text.isEmpty, text.utf8.count <= 15, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return Int64(text)
        }
        return nil
    }

    /// `2030-01-01T00:00:00.000Z` (the fraction is optional).
    static func parseExpiration(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970.rounded(.down)) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map { Int64($0.timeIntervalSince1970) }
    }

    static func invalid(_ detail: String) -> S3Error {
        S3Error(code: "InvalidPolicyDocument", message: "Invalid Policy: \(detail).", status: 400)
    }

    static func denied(_ detail: String) -> AuthenticationFailure {
        AuthenticationFailure(reason: .accessDenied, error: S3Error.accessDenied("Invalid according to Policy: \(detail)"))
    }
}

/// POST Object forms sign their policy: SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`,
/// `x-amz-signature`: the hex HMAC-SHA256 of the base64 policy under the scope's signing key) or SigV2
/// (`AWSAccessKeyId`, `signature`: base64 HMAC-SHA1 of the base64 policy). A form with no policy is anonymous.
extension RequestAuthenticator {
    /// Verifies the form's signature, then its policy: expiry and every condition (the file's size is checked
    /// by `PostPolicy.checkLength` once known).
    /// - Returns: the verified identity, and the policy (nil for an anonymous form).
    func authenticatePostForm(_ fields: [FormField], bucket: String, now: Int64) throws(AuthenticationFailure)
        -> (identity: VerifiedRequest, policy: PostPolicy?) {
        func field(_ name: String) -> String? { fields.first { $0.name.lowercased() == name }?.value }
        guard let policyText = field("policy") else {
            guard field("x-amz-signature") == nil, field("signature") == nil, field("awsaccesskeyid") == nil,
                  field("x-amz-credential") == nil else {
                throw .malformed(S3Error.invalidArgument("Bucket POST must contain a field named 'policy'. If it is specified, please check the order of the fields."))
            }
            guard anonymous == .forward else {
                throw AuthenticationFailure(reason: .anonymous, error: S3Error.accessDenied(
                    "Anonymous uploads are not allowed; sign the form's policy with AWS Signature Version 4 or 2."))
            }
            return (VerifiedRequest(credential: nil, scheme: .anonymous, payload: .unsigned, payloadHashHeader: "", chunkChain: nil), nil)
        }
        let credential: Credential
        if let signature = field("x-amz-signature") {
            guard field("x-amz-algorithm") == SigV4.algorithm else {
                throw .malformed(S3Error.invalidArgument("x-amz-algorithm must be \(SigV4.algorithm)"))
            }
            guard let credentialText = field("x-amz-credential"), let amzDate = field("x-amz-date") else {
                throw .malformed(S3Error.invalidArgument("A SigV4 form needs the x-amz-credential and x-amz-date fields"))
            }
            let accessKey: String, scope: SigV4Scope
            do {
                (accessKey, scope) = try SigV4AuthorizationHeader.parseCredential(credentialText[...])
            } catch {
                throw .malformed(S3Error.invalidArgument("x-amz-credential: \(error.message)"))
            }
            guard SigV4Time.parseAmzDate(amzDate) != nil, scope.date == String(amzDate.prefix(8)) else {
                throw .malformed(S3Error.invalidArgument("x-amz-date must be yyyyMMdd'T'HHmmss'Z' on the credential's date"), accessKey: accessKey)
            }
            try checkRegion(scope.region, accessKey: accessKey) { S3Error.authorizationHeaderMalformed("x-amz-credential: \($0)") }
            credential = try self.credential(accessKey)
            let expected = SigV4.signature(signingKey: SigningKeyCache.key(accessKey: accessKey, secret: credential.secretKey, scope: scope), stringToSign: policyText)
            guard ConstantTime.equals(expected, signature.lowercased()) else {
                throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(), accessKey: accessKey)
            }
        } else if let signature = field("signature"), let accessKey = field("awsaccesskeyid") {
            credential = try self.credential(accessKey)
            guard ConstantTime.equals(SigV2.signature(secret: credential.secretKey, stringToSign: policyText), signature) else {
                throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(), accessKey: accessKey)
            }
        } else {
            throw .malformed(S3Error.invalidArgument(
                "A form with a policy must be signed: x-amz-signature (with x-amz-credential, x-amz-algorithm, x-amz-date) or AWSAccessKeyId and signature"))
        }
        let policy: PostPolicy
        do {
            policy = try PostPolicy.parse(base64: policyText)
        } catch {
            throw .malformed(error, accessKey: credential.accessKey)
        }
        do {
            try policy.checkExpiry(now: now)
            try policy.checkFields(fields, bucket: bucket)
        } catch {
            var failure = error
            failure.accessKey = credential.accessKey
            throw failure
        }
        return (VerifiedRequest(credential: credential, scheme: .postPolicy, payload: .unsigned, payloadHashHeader: "", chunkChain: nil),
                policy)
    }
}

extension S3Error {
    static func entityTooSmall() -> S3Error {
        S3Error(code: "EntityTooSmall", message: "Your proposed upload is smaller than the minimum allowed size", status: 400)
    }
}
