import Shared

/// A KMIP connection over the shared OpenSSL TLS client (`Shared/TLS`): mutual TLS with the
/// configured client certificate, the server verified against `KMIP_CA_FILE` and its name.
final class KMIPTLSConnection: KMIPConnection {
    private let connection: TLSClientConnection

    init(settings: KMIPSettings, context: TLSContext, timeout: Duration) throws(KeyProviderError) {
        do {
            connection = try TLSClientConnection(host: settings.host, port: settings.port, context: context,
                                                 serverName: settings.serverName, timeout: timeout)
        } catch {
            throw KeyProviderError(.unavailable, "TLS connection to \(settings.host):\(settings.port) failed: \(error.message)")
        }
    }

    func write(_ bytes: [UInt8], timeout: Duration) throws(KeyProviderError) {
        let result: Result<Void, TLSError> = bytes.withUnsafeBytes { buffer in
            do throws(TLSError) {
                try connection.writeAll(buffer, timeout: timeout)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = result { throw KeyProviderError(.unavailable, "sending: \(error.message)") }
    }

    func read(count: Int, timeout: Duration) throws(KeyProviderError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let start = filled
            let result: Result<Int, TLSError> = out.withUnsafeMutableBytes { buffer in
                do throws(TLSError) {
                    return .success(try connection.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[start...]), timeout: timeout))
                } catch {
                    return .failure(error)
                }
            }
            let n: Int
            switch result {
            case .success(let got): n = got
            case .failure(let error): throw KeyProviderError(.unavailable, "receiving: \(error.message)")
            }
            guard n > 0 else { throw KeyProviderError(.unavailable, "the KMIP server closed the connection") }
            filled += n
        }
        return out
    }

    func close() { connection.close() }
}

extension KMIPKeyProvider {
    /// A provider that dials the server over mutual TLS. The TLS context (certificates, CA) is loaded
    /// once here, so a bad certificate or key file fails at start-up.
    convenience init(settings: KMIPSettings, timeout: Duration) throws(KeyProviderError) {
        var tls = TLSClientConfiguration()
        tls.caFile = settings.caFile
        tls.certificateFile = settings.certificateFile
        tls.keyFile = settings.keyFile
        let context: TLSContext
        do {
            context = try TLSContext.client(tls)
        } catch {
            throw KeyProviderError(.misconfigured, "KMIP TLS settings: \(error.message)")
        }
        self.init(settings: settings, timeout: timeout) { () throws(KeyProviderError) -> KMIPConnection in
            try KMIPTLSConnection(settings: settings, context: context, timeout: timeout)
        }
    }
}
