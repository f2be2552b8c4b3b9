import Foundation
import Shared

/// Warnings about a spec that is valid and gets applied, but will most likely not work as meant. The reconciler
/// records them as Warning events when it applies the Deployment they concern, so a change that introduces one is
/// reported once, next to the change, and an unchanged resource stays quiet.
enum SpecAdvisories {
    static let proxiedClusterHost = "ProxiedClusterHost"

    /// Every advisory for `spec`: a reason a program can match and a note a person can act on.
    static func all(_ spec: EncryptionGatewaySpec) -> [(reason: String, note: String)] {
        proxiedClusterHosts(spec).map { (proxiedClusterHost, $0) }
    }

    /// The gateway's outgoing URLs that honour the proxy variables, with the fields that set them (KMIP does not
    /// go through an HTTP proxy).
    static func proxiedDestinations(_ spec: EncryptionGatewaySpec) -> [(field: String, url: String)] {
        var out = [(field: "spec.backend.endpoint", url: spec.backend.endpoint)]
        if let kms = spec.encryption.awsKMS, !kms.endpoint.isEmpty { out.append(("spec.encryption.awsKMS.endpoint", kms.endpoint)) }
        if let vault = spec.encryption.vault { out.append(("spec.encryption.vault.address", vault.address)) }
        if let tracing = spec.tracing { out.append(("spec.tracing.endpoint", tracing.endpoint)) }
        return out
    }

    /// With `spec.proxy`, each destination inside the cluster or on the pod's loopback that `noProxy` does not
    /// exclude: the gateways would ask the proxy for it, and a proxy outside the cluster cannot resolve a Service
    /// name nor reach the pod's loopback. Matched as the gateway's libcurl matches (`ProxyEnvironment.excludes`).
    static func proxiedClusterHosts(_ spec: EncryptionGatewaySpec) -> [String] {
        guard let proxy = spec.proxy else { return [] }
        let noProxy = proxy.noProxy.joined(separator: ",")
        return proxiedDestinations(spec).compactMap { destination in
            guard let host = ProxyEnvironment.host(ofURL: destination.url),
                  let place = clusterPlace(host),
                  !ProxyEnvironment.excludes(host: host, noProxy: noProxy) else { return nil }
            return "\(destination.field) names \(host), \(place), but spec.proxy.noProxy does not list it: the gateways "
                + "will ask the proxy for it, which usually cannot reach it. Add \(suggestedEntry(host)) to spec.proxy.noProxy."
        }
    }

    /// Where a host is when it is not on the network the proxy serves: nil for any other host (an IP address of
    /// the cluster's own ranges cannot be told from another here).
    static func clusterPlace(_ host: String) -> String? {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name == "localhost" || name.hasSuffix(".localhost") || name.hasPrefix("127.") || name == "::1" {
            return "the pod's own loopback"
        }
        if name.contains(":") || name.allSatisfy({ $0.isNumber || $0 == "." }) { return nil }  // an IP address
        if !name.contains(".") { return "a Service in the gateway's namespace" }
        if name.hasSuffix(".svc") || name.contains(".svc.") || name.hasSuffix(".cluster.local") {
            return "a Service of the cluster"
        }
        return nil
    }

    /// The entry that covers `host` and its neighbours: the cluster's Service domain, else the host itself.
    static func suggestedEntry(_ host: String) -> String {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if let range = name.range(of: ".svc.") { return String(name[range.lowerBound...]) }
        if name.hasSuffix(".svc") { return ".svc" }
        return name
    }
}
