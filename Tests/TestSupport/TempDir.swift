import Foundation

/// A fresh directory under the system's temporary directory, removed with everything in it at `deinit`.
public final class TempDir {
    public let path: String

    public var url: URL { URL(fileURLWithPath: path) }

    /// `prefix` names the directory (e.g. after the test) so a leftover is easy to attribute.
    public init(prefix: String = "s3gw-test") {
        path = NSTemporaryDirectory() + prefix + "-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `text` to `name` (intermediate directories created) and returns the file's path.
    @discardableResult
    public func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }
}

/// A failure in test set-up (a helper process or file that did not come up), with a message saying what.
public enum TestSupportError: Error, CustomStringConvertible {
    case failed(String)

    public var description: String {
        switch self {
        case .failed(let message): return message
        }
    }
}
