/// A user's permissions as configured (`permissions { publish { allow, deny }, subscribe { allow, deny },
/// allow_responses }`), nats-server's `Permissions`. Compiled into `PermissionRules` for checking.
public struct Permissions: Sendable, Equatable {
    public var publish: SubjectPermission?
    public var subscribe: SubjectPermission?
    /// `allow_responses`: the user may publish to the reply subject of a request it received.
    public var response: ResponsePermission?

    public init(publish: SubjectPermission? = nil, subscribe: SubjectPermission? = nil, response: ResponsePermission? = nil) {
        self.publish = publish
        self.subscribe = subscribe
        self.response = response
    }
}

/// `allow` and `deny` subject lists. A nil `allow` allows everything (deny still applies); subscribe entries may
/// name a queue group after a space (`"FALCO.* responders"`).
public struct SubjectPermission: Sendable, Equatable {
    public var allow: [String]?
    public var deny: [String]?

    public init(allow: [String]? = nil, deny: [String]? = nil) {
        self.allow = allow
        self.deny = deny
    }
}

/// How many responses to one request a user with `allow_responses` may send, and for how long
/// (nats-server's defaults: one, within two minutes; a negative value means no limit).
public struct ResponsePermission: Sendable, Equatable {
    public static let defaultMaxMessages = 1
    public static let defaultExpires: Duration = .seconds(120)

    public var maxMessages: Int
    public var expires: Duration

    public init(maxMessages: Int = defaultMaxMessages, expires: Duration = defaultExpires) {
        self.maxMessages = maxMessages
        self.expires = expires
    }
}
