import NIOCore

/// Subject rules, as nats-server's sublist.go applies them.
public enum Subject {
    /// A subject a subscription may use: non-empty tokens separated by '.', where `>` may only be the last
    /// token; `*` and `>` are wildcards only as whole tokens. (nats-server IsValidSubject.)
    public static func isValidSubscription(_ subject: ByteBuffer) -> Bool {
        subject.withUnsafeReadableBytes { isValid($0, literalOnly: false) }
    }

    /// A subject a message may be published to: valid and without wildcard tokens. (IsValidLiteralSubject.)
    public static func isValidPublish(_ subject: ByteBuffer) -> Bool {
        subject.withUnsafeReadableBytes { isValid($0, literalOnly: true) }
    }

    public static func isValidSubscription(_ subject: String) -> Bool {
        var s = subject
        return s.withUTF8 { isValid(UnsafeRawBufferPointer($0), literalOnly: false) }
    }

    public static func isValidPublish(_ subject: String) -> Bool {
        var s = subject
        return s.withUTF8 { isValid(UnsafeRawBufferPointer($0), literalOnly: true) }
    }

    public static func isValid(_ bytes: UnsafeRawBufferPointer, literalOnly: Bool) -> Bool {
        if bytes.isEmpty { return false }
        var tokenStart = 0
        var sawFullWildcard = false
        for i in 0...bytes.count {
            if i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") || b == UInt8(ascii: "\n") {
                    return false
                }
                if b != UInt8(ascii: ".") { continue }
            }
            let length = i - tokenStart
            if length == 0 || sawFullWildcard { return false }
            if length == 1 {
                let t = bytes[tokenStart]
                if t == UInt8(ascii: ">") {
                    if literalOnly { return false }
                    sawFullWildcard = true
                } else if t == UInt8(ascii: "*") && literalOnly {
                    return false
                }
            }
            tokenStart = i + 1
        }
        return true
    }
}
