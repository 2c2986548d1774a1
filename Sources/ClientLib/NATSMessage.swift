import Foundation
import NIOCore

/// A message received on a subscription (or as a reply).
public struct NATSMessage: Sendable {
    public var subject: String
    public var reply: String?
    public var headers: NATSHeaders?
    public var payload: ByteBuffer
    /// The status code of a status message (e.g. 503 for no responders), from the header block's first line.
    public var status: Int? { headers?.status }

    public init(subject: String, reply: String? = nil, headers: NATSHeaders? = nil, payload: ByteBuffer) {
        self.subject = subject
        self.reply = reply
        self.headers = headers
        self.payload = payload
    }

    public var string: String { String(buffer: payload) }
    public var bytes: [UInt8] { Array(payload.readableBytesView) }
}

/// NATS message headers: `NATS/1.0[ status[ description]]` then `Name: value` lines. Names keep their case;
/// lookups ignore it. A name may appear more than once.
public struct NATSHeaders: Sendable, Equatable {
    public private(set) var fields: [(name: String, value: String)] = []
    public var status: Int?
    public var statusDescription: String?

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public subscript(name: String) -> String? {
        get { fields.first { $0.name.lowercased() == name.lowercased() }?.value }
        set {
            fields.removeAll { $0.name.lowercased() == name.lowercased() }
            if let newValue { fields.append((name, newValue)) }
        }
    }

    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    public mutating func append(_ name: String, _ value: String) { fields.append((name, value)) }

    public static func == (a: NATSHeaders, b: NATSHeaders) -> Bool {
        a.status == b.status && a.fields.elementsEqual(b.fields) { $0.name == $1.name && $0.value == $1.value }
    }

    /// The header block as sent on the wire, ending with the blank line.
    public func encoded() -> ByteBuffer {
        var out = ByteBuffer()
        out.writeString("NATS/1.0")
        if let status { out.writeString(" \(status)") }
        if let statusDescription { out.writeString(" \(statusDescription)") }
        out.writeString("\r\n")
        for (name, value) in fields { out.writeString("\(name): \(value)\r\n") }
        out.writeString("\r\n")
        return out
    }

    /// Parses a header block; nil when it does not start with `NATS/1.0`.
    public static func parse(_ block: ByteBuffer) -> NATSHeaders? {
        let text = String(buffer: block)
        var lines = text.components(separatedBy: "\r\n")
        guard let first = lines.first, first.hasPrefix("NATS/1.0") else { return nil }
        lines.removeFirst()
        var headers = NATSHeaders()
        let statusPart = first.dropFirst("NATS/1.0".count).trimmingCharacters(in: .whitespaces)
        if !statusPart.isEmpty {
            let parts = statusPart.split(separator: " ", maxSplits: 1)
            headers.status = Int(parts[0])
            if parts.count > 1 { headers.statusDescription = String(parts[1]) }
        }
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers.fields.append((name, value))
        }
        return headers
    }
}
