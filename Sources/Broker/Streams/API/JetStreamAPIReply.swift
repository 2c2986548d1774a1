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

    /// RFC 3339 ("2026-11-23T04:00:00.123456789Z") to nanoseconds since 1970.
    static func parse(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        var main = text
        var fraction: Int64 = 0
        if let dot = text.firstIndex(of: "."), let zone = text[dot...].firstIndex(where: { $0 == "Z" || $0 == "+" || $0 == "-" }) {
            let digits = String(text[text.index(after: dot)..<zone].prefix(9))
            fraction = (Int64(digits) ?? 0) * Int64(pow(10.0, Double(9 - digits.count)))
            main = String(text[..<dot]) + String(text[zone...])
        }
        guard let date = formatter.date(from: main) else { return nil }
        return Int64(date.timeIntervalSince1970) * 1_000_000_000 + fraction
    }
}
