import Shared
import Testing
import TestSupport
@testable import Proxy

@Suite struct HeaderNameSetTests {
    static let names = HeaderNameSet(["connection", "Keep-Alive", "te", "x-amz-date", "x-amz-content-sha256", "TE"])

    @Test(arguments: [
        ("connection", true), ("CONNECTION", true), ("Connection", true), ("keep-alive", true), ("KEEP-ALIVE", true),
        ("te", true), ("Te", true), ("X-Amz-Date", true), ("x-amz-content-SHA256", true),
        // Same length or prefix, different bytes.
        ("connectiom", false), ("connection ", false), ("connectio", false), ("t", false), ("", false), ("tf", false),
        ("x-amz-datE1", false), ("x-amz-dat", false), ("keep_alive", false),
        // Only ASCII letters fold: other bytes must be equal, so no look-alike matches.
        ("ｔｅ", false), ("connectİon", false), ("x-amz-date\u{0}", false), ("KEEP\u{2010}ALIVE", false),
        // Bytes 0x40 and 0x60 differ by 0x20 too but are not letters.
        ("x\ramz\rdate", false),
    ])
    func membership(name: String, member: Bool) {
        #expect(Self.names.contains(name) == member)
        // The same answer as comparing with every name, ASCII-case-insensitively.
        let reference = ["connection", "keep-alive", "te", "x-amz-date", "x-amz-content-sha256"].contains { name.caseInsensitiveEquals($0) }
        #expect(Self.names.contains(name) == reference)
    }

    /// The table with word compares answers as comparing with every name did, over seeded look-alikes of the forwarding
    /// sets' names: case flips, one byte replaced (letters' neighbours, `_`, non-ASCII), one byte added or removed.
    @Test func membershipAgreesWithComparingEveryName() {
        var rng = SplitMix64(seed: 14)
        let names = Array(BackendClient.hopByHop) + Array(BackendClient.clientAuthHeaders) + ["", "a-name-longer-than-sixteen-bytes"]
        let set = HeaderNameSet(names)
        let odd: [UInt8] = [0x40, 0x5b, 0x60, 0x7b, 0x5f, 0x2d, 0x00, 0xc3, 0xff]
        for _ in 0..<5000 {
            var bytes = Array(names.randomElement(using: &rng)!.utf8)
            for i in bytes.indices where Bool.random(using: &rng) && ((65...90).contains(bytes[i]) || (97...122).contains(bytes[i])) {
                bytes[i] ^= 0x20
            }
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where !bytes.isEmpty: bytes[Int.random(in: bytes.indices, using: &rng)] = odd.randomElement(using: &rng)!
            case 1: bytes.insert(odd.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
            case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: bytes.indices, using: &rng))
            default: break
            }
            let name = String(decoding: bytes, as: UTF8.self)
            let reference = names.contains { name.caseInsensitiveEquals($0) }
            #expect(set.contains(name) == reference, "\(bytes)")
            let bytesReference = names.contains { Array($0.utf8).map(ASCIICase.lowered) == bytes.map(ASCIICase.lowered) }
            #expect(bytes.withUnsafeBufferPointer { set.contains(bytes: $0) } == bytesReference, "\(bytes)")
        }
    }

    @Test func namesLongerThanAnyMemberAreNotMembers() {
        #expect(!Self.names.contains(String(repeating: "x", count: 300)))
        #expect(!HeaderNameSet([String]()).contains("host"))
    }

    /// The forwarding rules with the length-bucketed sets drop exactly what comparing every header with every
    /// dropped name dropped (the rules before issue 12's rewrite), on request and response sides, with
    /// `Connection`-named and `proxy-` headers in any case.
    @Test func forwardingRulesMatchTheComparisonWithEveryName() {
        let headerSets: [[(name: String, value: String)]] = [
            [("Host", "gw"), ("X-Amz-Date", "d"), ("Authorization", "a"), ("x-amz-content-sha256", "h"), ("Range", "bytes=0-1")],
            [("Connection", "keep-alive, X-Hop"), ("x-hop", "1"), ("X-HOP", "2"), ("Keep-Alive", "t"), ("Date", "d"), ("Server", "s"),
             ("x-amz-request-id", "r"), ("ETag", "\"e\""), ("Content-Length", "3"), ("Last-Modified", "m")],
            [("PROXY-Status", "p"), ("proxy-", "p"), ("Proxy", "kept"), ("proxy", "kept"), ("Proxy-Authorization", "x"),
             ("TE", "trailers"), ("Trailer", "x"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Expect", "100-continue")],
            [("connection", " a\t,\tB ,"), ("A", "1"), ("b", "2"), ("c", "3"), ("X-Amz-Security-Token", "t"), ("x-amz-meta-a", "1")],
            [],
        ]
        let requestDropped = Array(BackendClient.hopByHop) + Array(BackendClient.clientAuthHeaders)
        let responseDropped = Array(BackendClient.hopByHop) + Array(BackendClient.serverOwnedResponseHeaders)
        for headers in headerSets {
            #expect(BackendClient.forwardableRequestHeaders(HTTPFields(headers)).map(\.name)
                    == Self.reference(headers, dropping: requestDropped))
            #expect(BackendClient.forwardableResponseHeaders(headers).map(\.name)
                    == Self.reference(headers, dropping: responseDropped))
        }
    }

    @Test(arguments: [
        ("keep-alive", ["keep-alive"]), (" X-Hop\t, keep-alive", ["X-Hop", "keep-alive"]), ("a,,b", ["a", "b"]),
        (", ,\t,", []), ("", []), ("close", ["close"]), ("x-a-rather-long-hop-by-hop-header-name ,y", ["x-a-rather-long-hop-by-hop-header-name", "y"]),
        ("é, f", ["é", "f"]),
    ])
    func connectionListElements(value: String, elements: [String]) {
        var out: [String] = []
        BackendClient.appendListElements(value, to: &out)
        #expect(out == elements)
        // Skipping a set's names leaves out exactly the elements it contains.
        let set = HeaderNameSet(["keep-alive", "x-hop"])
        var kept: [String] = []
        BackendClient.appendListElements(value, to: &kept, skipping: set)
        #expect(kept == elements.filter { !set.contains($0) })
    }

    /// The rules as they were: every header compared with every dropped name and every Connection token.
    static func reference(_ headers: [(name: String, value: String)], dropping dropped: [String]) -> [String] {
        var tokens: [String] = []
        for header in headers where header.name.lowercased() == "connection" {
            tokens += header.value.split(separator: ",").map { String(BackendClient.trimmed($0)).lowercased() }
        }
        return headers.filter { header in
            let lower = header.name.lowercased()
            return !dropped.contains(lower) && !tokens.contains(lower) && !lower.hasPrefix("proxy-")
        }.map(\.name)
    }
}
