import Foundation

/// `encryption-gateway-operator render -f resource.yaml [--secret-hash H] [--gateway-image IMG]`: prints, without a
/// cluster, the children the operator would apply for each EncryptionGateway in the file (other documents, such as
/// the Secrets of a sample, are skipped). For reviews and GitOps previews; the output is deterministic.
///
/// `crd` prints the CustomResourceDefinition generated from the API types.
enum RenderCommand {
    static let usage = """
        usage: encryption-gateway-operator render -f FILE [--secret-hash HASH] [--gateway-image IMAGE]
               encryption-gateway-operator crd

          render   print the objects the operator would apply for each EncryptionGateway in FILE ("-" = stdin)
                   --secret-hash     value of the s3gateway.dev/secret-hash pod annotation (in a cluster: a hash of
                                     the referenced Secret keys; default "unknown")
                   --gateway-image   image used when spec.image is empty (default \(OperatorOptions.defaultGatewayImage),
                                     env GATEWAY_IMAGE)
          crd      print the EncryptionGateway CustomResourceDefinition
        """

    struct Failure: Error {
        var message: String
        var code: Int32 = 2
    }

    /// Runs `render`; returns the YAML on success.
    static func render(_ arguments: [String], environment: [String: String],
                       readFile: (String) throws -> [UInt8]) throws(Failure) -> String {
        var file: String?
        var secretHash = "unknown"
        var image = environment["GATEWAY_IMAGE"].flatMap { $0.isEmpty ? nil : $0 } ?? OperatorOptions.defaultGatewayImage
        var i = 0
        func value(_ flag: String) throws(Failure) -> String {
            guard i < arguments.count else { throw Failure(message: "\(flag) needs a value") }
            defer { i += 1 }
            return arguments[i]
        }
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            switch arg {
            case "-f", "--filename": file = try value(arg)
            case "--secret-hash": secretHash = try value(arg)
            case "--gateway-image": image = try value(arg)
            case "-h", "--help": throw Failure(message: usage, code: 0)
            default:
                if let eq = arg.firstIndex(of: "="), ["--filename", "--secret-hash", "--gateway-image"].contains(String(arg[..<eq])) {
                    let v = String(arg[arg.index(after: eq)...])
                    switch arg[..<eq] {
                    case "--filename": file = v
                    case "--secret-hash": secretHash = v
                    default: image = v
                    }
                } else {
                    throw Failure(message: "unexpected argument \"\(arg)\" (see render --help)")
                }
            }
        }
        guard let file else { throw Failure(message: "render needs -f FILE (see render --help)") }
        let bytes: [UInt8]
        do { bytes = try readFile(file) } catch { throw Failure(message: "cannot read \(file): \(error)", code: 1) }
        let documents: [JSONValue]
        do {
            documents = try YAMLToJSON.parseDocuments(bytes)
        } catch {
            throw Failure(message: "\(file): \(error.description)")
        }
        var out: [JSONValue] = []
        var found = 0
        for doc in documents where doc["kind"]?.string == EncryptionGatewayCRD.kind {
            found += 1
            let (resource, problems) = GatewayResource.parse(doc)
            guard problems.isEmpty else {
                throw Failure(message: "\(file): EncryptionGateway \(resource.name) is invalid:\n  " + problems.joined(separator: "\n  "))
            }
            let snapshot = Snapshot(resource: resource, secretHash: secretHash, capabilities: .current, defaultImage: image)
            out += Builders.all(snapshot).compactMap(\.object)
        }
        guard found > 0 else { throw Failure(message: "\(file): no EncryptionGateway found") }
        return YAMLWriter.documents(out)
    }
}
