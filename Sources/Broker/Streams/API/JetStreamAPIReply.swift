import Foundation

/// A reply body of the JetStream API (`stream_info_response`, ...): `type` names it on the wire.
protocol JetStreamAPIResponse: Encodable {
    static var type: String { get }
}

/// The JSON a requester gets: a response with its `type` field, or an error.
enum JetStreamAPIReply {
    static let typePrefix = "io.nats.jetstream.api.v1."

    /// `{"type":"io.nats.jetstream.api.v1.<type>", <the response's fields>}`.
    static func encode<Response: JetStreamAPIResponse>(_ response: Response) -> [UInt8] {
        encoded(Typed(response: response))
    }

    /// `{"type":...,"error":{"code":..,"err_code":..,"description":..}}`; without a type when the request
    /// named no API (nats-server's bad request).
    static func encode(_ error: JetStreamAPIError, type: String?) -> [UInt8] {
        encoded(ErrorBody(type: type.map { typePrefix + $0 }, error: error))
    }

    static func encode<Response: JetStreamAPIResponse>(_ result: Result<Response, JetStreamAPIError>) -> [UInt8] {
        switch result {
        case .success(let response): return encode(response)
        case .failure(let error): return encode(error, type: Response.type)
        }
    }

    private struct Typed<Response: JetStreamAPIResponse>: Encodable {
        var response: Response

        enum CodingKeys: String, CodingKey { case type }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(JetStreamAPIReply.typePrefix + Response.type, forKey: .type)
            // The response's own fields go into the same object.
            try response.encode(to: encoder)
        }
    }

    private struct ErrorBody: Encodable {
        var type: String?
        var error: JetStreamAPIError
    }

    /// Sorted keys: Foundation's encoder has no stable order otherwise (clients parse JSON, no order matters).
    static func encoded(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            // Only non-finite doubles fail to encode, and the API has none: still, answer rather than trap.
            return encode(JetStreamAPIError(code: 500, errCode: 10003, description: "cannot encode the reply: \(error)"), type: nil)
        }
    }

    static func decode<Request: Decodable>(_ type: Request.Type, from payload: [UInt8]) -> Result<Request, JetStreamAPIError> {
        // An empty body is an empty request (nats-py sends none for INFO, NAMES, ...).
        let data = payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) ? Data("{}".utf8) : Data(payload)
        do {
            return .success(try JSONDecoder().decode(Request.self, from: data))
        } catch {
            return .failure(.invalidJSON(error))
        }
    }
}

/// A time on the wire: RFC 3339 in UTC with nanoseconds and `Z` (nats-py's parser needs the `Z`); Go's zero
/// time when there is none (an empty stream's first_ts).
struct APITime: Codable, Equatable, Sendable {
    /// Nanoseconds since 1970; nil = Go's zero time.
    var nanoseconds: Int64?

    static let zero = APITime(nanoseconds: nil)
    static let zeroText = "0001-01-01T00:00:00Z"

    init(nanoseconds: Int64?) { self.nanoseconds = nanoseconds }
    init(_ date: Date) { nanoseconds = Int64(date.timeIntervalSince1970 * 1e9) }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(nanoseconds.map(JetStream.timestamp(nanoseconds:)) ?? Self.zeroText)
    }

    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        nanoseconds = text == Self.zeroText ? nil : Self.parse(text)
    }

    /// RFC 3339 ("2026-11-23T04:00:00.123456789Z", or with a "+hh:mm"/"-hh:mm" offset) to nanoseconds since
    /// 1970, read field by field (no formatter per call).
    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func number(_ at: Int, _ width: Int) -> Int? {
            guard at + width <= b.count else { return nil }
            var n = 0
            for c in b[at..<(at + width)] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                n = n * 10 + Int(c - 0x30)
            }
            return n
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2) else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 9 { fraction = fraction * 10 + Int64(b[i] - 0x30); digits += 1 }
                i += 1
            }
            for _ in digits..<9 { fraction *= 10 }
        }
        var offset = 0
        guard i < b.count else { return nil }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            guard i + 1 == b.count else { return nil }
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard i + 6 == b.count, b[i + 3] == UInt8(ascii: ":"), let h = number(i + 1, 2), let m = number(i + 4, 2) else { return nil }
            offset = (h * 3600 + m * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = Int64(timegm(&parts)) - Int64(offset)
        return seconds.saturatingMultiply(1_000_000_000).saturatingAdd(fraction)
    }
}
