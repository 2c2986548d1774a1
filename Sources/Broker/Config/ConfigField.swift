import NATSConfig

// MARK: - Typed access to one entry

/// One entry with the name to show in errors (`port`, `authorization.timeout`).
struct ConfigField {
    let entry: ConfigMap.Entry
    let name: String

    var value: ConfigValue { entry.value }

    func fail(_ reason: String) -> ConfigError {
        ConfigError(file: entry.file, line: entry.line, reason: reason)
    }

    func typeMismatch(_ expected: String) -> ConfigError {
        fail("expected \(expected) for \"\(name)\", got \(value.summary)")
    }

    func outOfRange(_ shown: String, _ rule: String) -> ConfigError {
        fail("invalid value \(shown) for \"\(name)\": \(rule)")
    }

    func string() throws -> String {
        guard case .string(let s) = value else { throw typeMismatch("a string") }
        return s
    }

    /// A string (one element) or an array of strings; `elements` and `other` name what was expected in the
    /// type errors for an element that is not a string and for any other value.
    func stringOrList(elements: String, other: String) throws -> [String] {
        switch value {
        case .string(let s): return [s]
        case .array(let items):
            return try items.map { item in
                guard case .string(let s) = item else { throw typeMismatch(elements) }
                return s
            }
        default: throw typeMismatch(other)
        }
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw typeMismatch("a boolean (true/false, yes/no, on/off)") }
        return b
    }

    func integer(in range: ClosedRange<Int64>) throws -> Int64 {
        guard case .integer(let n) = value else { throw typeMismatch("an integer") }
        guard range.contains(n) else {
            throw outOfRange("\(n)", "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return n
    }

    /// A port number; nil for 0, which means "the default" (or "off" for monitoring).
    func port() throws -> Int? {
        let port = try integer(in: ConfigLoader.portRange)
        return port == 0 ? nil : Int(port)
    }

    /// nats-server's parseListen: an integer port or a "host:port" string ("[::1]:4222" for IPv6).
    /// The host is nil when not given; the port is nil when 0.
    func hostPort() throws -> (host: String?, port: Int?) {
        switch value {
        case .integer:
            return (nil, try port())
        case .string(let address):
            guard let (host, portText) = splitHostPort(address) else {
                throw fail("could not parse address \"\(address)\" for \"\(name)\": expected host:port")
            }
            guard let port = Int64(portText) else {
                throw fail("could not parse port \"\(portText)\" in \"\(address)\" for \"\(name)\"")
            }
            guard ConfigLoader.portRange.contains(port) else {
                throw outOfRange("\(port)", "a port must be between 0 and 65535")
            }
            return (host.isEmpty ? nil : host, port == 0 ? nil : Int(port))
        default:
            throw typeMismatch("a port or a \"host:port\" string")
        }
    }

    /// A byte count: an integer, possibly written with a size suffix (`64KB`, lexed by the parser),
    /// or the same as a quoted string. nil for 0, which means "the default" in nats-server.
    func size(max: Int64) throws -> Int? {
        let bytes: Int64
        switch value {
        case .integer(let n):
            bytes = n
        case .string(let text):
            guard let n = ConfigParser.parseSize(text) else {
                throw fail("invalid size \"\(text)\" for \"\(name)\"; write e.g. 1048576, 1MB or 64KB")
            }
            bytes = n
        default:
            throw typeMismatch("a size")
        }
        if bytes < 0 { throw outOfRange("\(bytes)", "must not be negative") }
        if bytes > max { throw fail("\(name) value is too big (limit \(max))") }
        return bytes == 0 ? nil : Int(bytes)
    }

    /// A duration string as Go's time.ParseDuration reads it ("2m", "10s", "500ms", "1h30m"), or,
    /// when `acceptingSeconds`, an integer number of seconds (nats-server's older form for
    /// ping_interval and write_deadline). nil for 0, which means "the default".
    func duration(acceptingSeconds: Bool) throws -> Duration? {
        let duration: Duration
        switch value {
        case .string(let text):
            duration = try parseDuration(text)
        case .integer(let seconds) where acceptingSeconds:
            duration = .seconds(seconds)
        default:
            throw typeMismatch(acceptingSeconds ? "a duration such as \"2m\" or a number of seconds" : "a duration string such as \"2m\"")
        }
        if duration < .zero { throw outOfRange(value.shownValue, "must not be negative") }
        return duration == .zero ? nil : duration
    }

    /// authorization.timeout: seconds as an integer or a float, or a duration string.
    func authTimeout() throws -> Duration? {
        let duration: Duration
        switch value {
        case .integer(let seconds): duration = .seconds(seconds)
        case .float(let seconds): duration = .seconds(seconds)
        case .string(let text): duration = try parseDuration(text)
        default: throw typeMismatch("a number of seconds or a duration string")
        }
        if duration < .zero { throw outOfRange(value.shownValue, "must not be negative") }
        return duration == .zero ? nil : duration
    }

    private func parseDuration(_ text: String) throws -> Duration {
        switch GoDuration.parse(text) {
        case .success(let nanoseconds): return .nanoseconds(nanoseconds)
        case .failure(let problem): throw fail("error parsing \(name): \(problem.reason)")
        }
    }
}

extension ConfigValue {
    /// The value as it would be written, for range errors.
    var shownValue: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .integer(let n): return "\(n)"
        case .float(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        case .array: return "[...]"
        case .map: return "{...}"
        }
    }
}

/// Go's net.SplitHostPort: "host:port", "[v6]:port"; a host with unbracketed colons is refused.
private func splitHostPort(_ address: String) -> (host: String, port: String)? {
    if address.hasPrefix("[") {
        guard let close = address.firstIndex(of: "]") else { return nil }
        let afterClose = address[address.index(after: close)...]
        guard afterClose.hasPrefix(":") else { return nil }
        return (String(address[address.index(after: address.startIndex) ..< close]), String(afterClose.dropFirst()))
    }
    guard let colon = address.lastIndex(of: ":") else { return nil }
    let host = address[..<colon]
    if host.contains(":") { return nil }
    return (String(host), String(address[address.index(after: colon)...]))
}
