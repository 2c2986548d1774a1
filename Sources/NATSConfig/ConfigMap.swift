/// A `{ ... }` block (or the whole file): keys in the order they were written, each with the file
/// and line it came from so that later errors can point at it.
public struct ConfigMap: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The key exactly as written (case is kept; `ConfigLoader` lower-cases it).
        public var key: String
        public var value: ConfigValue
        /// The file that defined the key: differs from the parent's when it came through an include.
        public var file: String
        /// 1-based line of the key.
        public var line: Int
        /// True when `$key` was referenced. nats-server does not report such keys as unknown:
        /// they are variables, e.g. `TOKEN: "s3cr3t"` followed by `authorization { token: $TOKEN }`.
        public var usedAsVariable: Bool

        public init(key: String, value: ConfigValue, file: String, line: Int, usedAsVariable: Bool = false) {
            self.key = key
            self.value = value
            self.file = file
            self.line = line
            self.usedAsVariable = usedAsVariable
        }
    }

    /// Keys are unique (case-sensitively): a repeated key replaces the earlier one, as in nats-server.
    public private(set) var entries: [Entry] = []

    public init() {}

    public init(_ entries: [Entry]) {
        for entry in entries { set(entry) }
    }

    public var keys: [String] { entries.map(\.key) }
    public var isEmpty: Bool { entries.isEmpty }

    public subscript(key: String) -> ConfigValue? { entry(key)?.value }

    public func entry(_ key: String) -> Entry? {
        entries.first { $0.key == key }
    }

    /// Adds or replaces `entry.key`. A replaced key moves to the end: the last definition wins,
    /// and the order of entries stays the order in which the winning definitions were written.
    /// Exception: a `repeatable` map is appended and keeps earlier ones (brokerd's `gcp_pubsub { }`, each one bridge).
    public mutating func set(_ entry: Entry, repeatable: Bool = false) {
        if repeatable, case .map = entry.value {
            entries.append(entry)
            return
        }
        entries.removeAll { $0.key == entry.key }
        entries.append(entry)
    }

    /// Looks up a variable and marks its entry as used.
    mutating func useAsVariable(_ key: String) -> ConfigValue? {
        guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
        entries[index].usedAsVariable = true
        return entries[index].value
    }
}
