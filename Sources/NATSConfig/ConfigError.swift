import Foundation

/// A configuration error, located in a file. Reads like `brokerd.conf:12: unknown key "prot"`.
public struct ConfigError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    public var file: String
    /// 1-based line; 0 when the error concerns the whole file (e.g. it cannot be read).
    public var line: Int
    public var reason: String

    public init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)"
    }

    public var errorDescription: String? { description }
}
