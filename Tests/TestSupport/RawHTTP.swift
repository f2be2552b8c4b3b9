import Foundation
import Glibc

/// A blocking POSIX client socket with a receive timeout so a broken server fails the test instead of hanging it.
public final class RawHTTPClient {
    public let fd: Int32
    private var buffered: [UInt8] = []

    public init?(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = in_port_t(UInt16(port).bigEndian)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    public func send(_ s: String) { send(Array(s.utf8)) }

    public func send(_ b: [UInt8]) {
        var off = 0
        while off < b.count {
            let n = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Reads more into the buffer; false at EOF / error / timeout.
    private func fill() -> Bool {
        var tmp = [UInt8](repeating: 0, count: 65536)
        let n = tmp.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffered += tmp[0..<n]
        return true
    }

    public func readLine() -> String? {
        while true {
            if let i = buffered.firstIndex(of: 0x0A) {
                let line = String(decoding: buffered[..<i], as: UTF8.self)
                buffered.removeFirst(i + 1)
                return line.hasSuffix("\r") ? String(line.dropLast()) : line
            }
            if !fill() { return nil }
        }
    }

    public func readExactly(_ n: Int) -> [UInt8]? {
        while buffered.count < n { if !fill() { return nil } }
        let out = Array(buffered[..<n])
        buffered.removeFirst(n)
        return out
    }

    /// Everything until the server closes.
    public func readToEnd() -> [UInt8] {
        while fill() {}
        defer { buffered.removeAll() }
        return buffered
    }

    /// True when the server has closed the connection (EOF or reset) and nothing else is pending.
    public func isClosedByPeer() -> Bool {
        buffered.isEmpty && !fill()
    }

    public struct Response {
        public var status: Int
        public var headers: [String: String]  // lower-cased names
        public var body: [UInt8]
    }

    /// Reads one response; `bodyless` for HEAD. Nil if the connection ended first.
    public func readResponse(bodyless: Bool = false) -> Response? {
        guard let statusLine = readLine() else { return nil }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var headers: [String: String] = [:]
        while let line = readLine(), !line.isEmpty {
            guard let c = line.firstIndex(of: ":") else { return nil }
            headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
        if bodyless || status == 100 || status == 204 || status == 304 { return Response(status: status, headers: headers, body: []) }
        if let cl = headers["content-length"], let n = Int(cl) {
            guard let body = readExactly(n) else { return nil }
            return Response(status: status, headers: headers, body: body)
        }
        if headers["transfer-encoding"] == "chunked" {
            var body: [UInt8] = []
            while true {
                guard let sizeLine = readLine(), let size = Int(sizeLine, radix: 16) else { return nil }
                if size == 0 {
                    while let l = readLine(), !l.isEmpty {}
                    return Response(status: status, headers: headers, body: body)
                }
                guard let chunk = readExactly(size), readLine() == "" else { return nil }
                body += chunk
            }
        }
        return Response(status: status, headers: headers, body: readToEnd())
    }
}

/// A minimal blocking HTTP/1.1 GET to 127.0.0.1:PORT of `address` (Connection: close); returns status and body.
public func rawGET(_ address: String, _ path: String) -> (status: Int, body: String)? {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
          let client = RawHTTPClient(port: port) else { return nil }
    client.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    guard let response = client.readResponse() else { return nil }
    return (response.status, String(decoding: response.body, as: UTF8.self))
}
