import Foundation
import Shared
import Testing
@testable import Proxy

/// The backend request of a client request is signed with the key pair its credential maps to.
@Suite struct BackendSigningTests {
    static let t: Int64 = 1_764_000_000

    static func client() throws -> BackendClient {
        try BackendClient(configuration: BackendConfiguration(endpoint: "http://127.0.0.1:9000", region: "us-east-1",
                                                              accessKey: "GATEWAYBACKEND", secretKey: "gateway-backend-secret"),
                          http: HTTPClient(), now: { t })
    }

    /// Which backend key pair the prepared request verifies under.
    static func signer(of prepared: (url: String, headers: [(name: String, value: String)])) -> String? {
        let target = String(prepared.url.dropFirst("http://127.0.0.1:9000".count))
        let head = HTTPRequestHead(method: "GET", target: target, headers: HTTPFields(prepared.headers))
        for (key, secret) in [("GATEWAYBACKEND", "gateway-backend-secret"), ("CEPHUSER2", "ceph-user-2-secret")] {
            let authenticator = RequestAuthenticator(credentials: StaticCredentials(accessKey: key, secretKey: secret), regions: ["us-east-1"])
            if (try? authenticator.authenticate(method: "GET", rawPath: head.rawPath, rawQuery: head.rawQuery,
                                                headers: head.headers, now: t)) != nil { return key }
        }
        return nil
    }

    @Test func eachSigningChoice() throws {
        let backend = try Self.client()
        func prepare(_ signing: BackendSigning) -> (url: String, headers: [(name: String, value: String)]) {
            backend.prepare(method: "GET", bucket: "b", key: "k", query: [], headers: [(name: "Range", value: "bytes=0-1")],
                            payloadHash: SigV4.emptyPayloadHash, signing: signing)
        }
        #expect(Self.signer(of: prepare(.gateway)) == "GATEWAYBACKEND")
        #expect(Self.signer(of: prepare(.credential(BackendCredential(accessKey: "CEPHUSER2", secretKey: "ceph-user-2-secret")))) == "CEPHUSER2")
        let anonymous = prepare(.anonymous)
        #expect(Self.signer(of: anonymous) == nil)
        #expect(!anonymous.headers.contains { ["authorization", "x-amz-date", "x-amz-content-sha256"].contains($0.name.lowercased()) })
        #expect(anonymous.headers.contains { $0.name == "Range" })
    }

    @Test func identityDecidesTheSigning() {
        let mapped = Credential(accessKey: "C", secretKey: "s", backend: BackendCredential(accessKey: "B", secretKey: "t"))
        func identity(_ credential: Credential?) -> VerifiedRequest {
            VerifiedRequest(credential: credential, scheme: credential == nil ? .anonymous : .sigV4Header, payload: .unsigned,
                            payloadHashHeader: "", chunkChain: nil)
        }
        #expect(identity(mapped).backendSigning == .credential(BackendCredential(accessKey: "B", secretKey: "t")))
        #expect(identity(Credential(accessKey: "C", secretKey: "s")).backendSigning == .gateway)
        #expect(identity(nil).backendSigning == .anonymous)
    }
}
