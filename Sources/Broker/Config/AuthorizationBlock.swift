import NATSConfig
import Protocol

extension ConfigLoader {
    /// `authorization { user, password, token, timeout, users [...], default_permissions }` (nats-server's
    /// parseAuthorization, with its checks and texts).
    static func applyAuthorization(
        _ block: ConfigField, to options: inout BrokerOptions, defaults: BrokerOptions
    ) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        var user: String?
        var password: String?
        var token: String?
        var timeout = defaults.authTimeout
        var users: [BrokerOptions.User] = []
        var nkeys: [BrokerOptions.NkeyUser] = []
        var defaultPermissions: Permissions?
        for entry in map.entries {
            let field = ConfigField(entry: entry, name: "\(block.name).\(entry.key)")
            let key = entry.key.lowercased()
            switch key {
            case "user", "username":
                user = try field.string()
            case "pass", "password":
                password = try field.string()
            case "token":
                token = try field.string()
            case "timeout":
                timeout = try field.authTimeout() ?? defaults.authTimeout
            case "users":
                (users, nkeys) = try parseUsers(field)
            case "default_permission", "default_permissions", "permissions":
                defaultPermissions = try parsePermissions(field)
            default:
                if unsupportedAuthorizationKeys.contains(key) {
                    throw field.fail("\"\(entry.key)\" in authorization is not supported by brokerd")
                }
                if !entry.usedAsVariable {
                    throw field.fail("unknown key \"\(entry.key)\" in authorization")
                }
            }
        }
        func given(_ value: String?) -> String? { (value?.isEmpty ?? true) ? nil : value }
        if given(token) != nil, given(user) != nil || given(password) != nil {
            throw block.fail("authorization cannot have both a user/password and a token")
        }
        if !users.isEmpty || !nkeys.isEmpty {
            if given(user) != nil { throw block.fail("Can not have a single user/pass and a users array") }
            if given(token) != nil { throw block.fail("Can not have a token and a users array") }
        }
        var seen: Set<String> = []
        for name in users.map(\.name) + nkeys.map(\.publicKey) {
            if !seen.insert(name).inserted {
                throw block.fail(name.hasPrefix("U") && nkeys.contains { $0.publicKey == name }
                                 ? "Duplicate nkey \"\(name)\" detected" : "Duplicate user \"\(name)\" detected")
            }
        }
        // default_permissions: for every user without its own (nats-server's applyDefaultPermissions).
        if let defaultPermissions {
            for i in users.indices where users[i].permissions == nil { users[i].permissions = defaultPermissions }
            for i in nkeys.indices where nkeys[i].permissions == nil { nkeys[i].permissions = defaultPermissions }
        }
        // As in nats-server the block replaces any earlier credentials; without any it sets none.
        let credentials = BrokerOptions.Authorization(
            token: given(token), user: given(user), password: given(password), users: users, nkeys: nkeys)
        options.authorization = credentials == BrokerOptions.Authorization() ? nil : credentials
        options.authTimeout = timeout
    }

    /// `users [ { user, password, permissions } | { nkey, permissions } ]` (nats-server's parseUsers).
    static func parseUsers(_ field: ConfigField) throws -> ([BrokerOptions.User], [BrokerOptions.NkeyUser]) {
        guard case .array(let items) = field.value else {
            throw field.fail("Expected users field to be an array, got \(field.value.shownValue)")
        }
        var users: [BrokerOptions.User] = []
        var nkeys: [BrokerOptions.NkeyUser] = []
        for item in items {
            guard case .map(let map) = item else {
                throw field.fail("Expected user entry to be a map/struct, got \(item.shownValue)")
            }
            var name = "", password = "", nkey = ""
            var permissions: Permissions?
            var connectionTypes: [String]?
            for entry in map.entries {
                let sub = ConfigField(entry: entry, name: "\(field.name).\(entry.key)")
                switch entry.key.lowercased() {
                case "nkey": nkey = try sub.string()
                case "user", "username": name = try sub.string()
                case "pass", "password": password = try sub.string()
                case "permission", "permissions", "authorization": permissions = try parsePermissions(sub)
                case "allowed_connection_types", "connection_types", "clients":
                    connectionTypes = try parseConnectionTypes(sub)
                case "proxy_required":
                    throw sub.fail("\"\(entry.key)\" is not supported by brokerd (it has no trusted proxies)")
                default:
                    if !entry.usedAsVariable { throw sub.fail("unknown field \"\(entry.key)\"") }
                }
            }
            if nkey.isEmpty && name.isEmpty { throw field.fail("User entry requires a user") }
            if !nkey.isEmpty {
                guard NKey.isValidPublicUserKey(nkey) else { throw field.fail("Not a valid public nkey for a user") }
                if !name.isEmpty || !password.isEmpty {
                    throw field.fail("Nkey users do not take usernames or passwords")
                }
                nkeys.append(BrokerOptions.NkeyUser(publicKey: nkey, permissions: permissions, connectionTypes: connectionTypes))
            } else {
                users.append(BrokerOptions.User(name: name, password: password.isEmpty ? nil : password, permissions: permissions,
                                                connectionTypes: connectionTypes))
            }
        }
        return (users, nkeys)
    }

    /// nats-server's connection types; brokerd serves STANDARD (the client port) only.
    static let connectionTypes: Set<String> = [
        "STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS",
    ]

    static func parseConnectionTypes(_ field: ConfigField) throws -> [String] {
        let names = try field.stringOrList(elements: "allowed connection types as strings", other: "allowed connection types: a string or an array of strings")
        return try names.map { name in
            let upper = name.uppercased()
            guard connectionTypes.contains(upper) else { throw field.fail("unknown connection type \"\(name)\"") }
            return upper
        }
    }

    /// `permissions { publish | pub | import, subscribe | sub | export, allow_responses }`.
    static func parsePermissions(_ field: ConfigField) throws -> Permissions {
        guard case .map(let map) = field.value else {
            throw field.fail("Expected permissions to be a map/struct, got \(field.value.shownValue)")
        }
        var permissions = Permissions()
        for entry in map.entries {
            let sub = ConfigField(entry: entry, name: "\(field.name).\(entry.key)")
            switch entry.key.lowercased() {
            case "pub", "publish", "import":
                permissions.publish = try parseSubjectPermission(sub, allowQueue: false)
            case "sub", "subscribe", "export":
                permissions.subscribe = try parseSubjectPermission(sub, allowQueue: true)
            case "publish_allow_responses", "allow_responses":
                permissions.response = try parseResponsePermission(sub)
                if permissions.response != nil, permissions.publish?.allow == nil {
                    // nats-server turns the blanket publish allow off.
                    permissions.publish = SubjectPermission(allow: [], deny: permissions.publish?.deny)
                }
            default:
                if !entry.usedAsVariable { throw sub.fail("Unknown field \"\(entry.key)\" parsing permissions") }
            }
        }
        return permissions
    }

    /// `{ allow, deny }`, or a subject or list of subjects meaning allow (the older form).
    static func parseSubjectPermission(_ field: ConfigField, allowQueue: Bool) throws -> SubjectPermission? {
        guard case .map(let map) = field.value else {
            return SubjectPermission(allow: try permissionSubjects(field, allowQueue: allowQueue))
        }
        if map.isEmpty { return nil }
        var permission = SubjectPermission()
        for entry in map.entries {
            let sub = ConfigField(entry: entry, name: "\(field.name).\(entry.key)")
            switch entry.key.lowercased() {
            case "allow": permission.allow = try permissionSubjects(sub, allowQueue: allowQueue)
            case "deny": permission.deny = try permissionSubjects(sub, allowQueue: allowQueue)
            default:
                if !entry.usedAsVariable {
                    throw sub.fail("Unknown field name \"\(entry.key)\" parsing subject permissions, only 'allow' or 'deny' are permitted")
                }
            }
        }
        return permission
    }

    /// A subject or an array of subjects; subscribe entries may carry a queue group ("FALCO.* responders").
    static func permissionSubjects(_ field: ConfigField, allowQueue: Bool) throws -> [String] {
        let subjects: [String]
        switch field.value {
        case .string(let s): subjects = [s]
        case .array(let items):
            subjects = try items.map { item in
                guard case .string(let s) = item else { throw field.fail("Subject in permissions array cannot be cast to string") }
                return s
            }
        default:
            throw field.fail("Expected subject permissions to be a subject, or array of subjects, got \(field.value.summary)")
        }
        for subject in subjects where !Subject.isValidSubscription(subject) {
            guard allowQueue else { throw field.fail("subject \"\(subject)\" is not a valid subject") }
            let parts = subject.split(whereSeparator: \.isWhitespace).map(String.init)
            guard parts.count == 2 else { throw field.fail("subject \"\(subject)\" is not a valid subject") }
            guard Subject.isValidSubscription(parts[0]) else { throw field.fail("subject \"\(parts[0])\" is not a valid subject") }
            guard Subject.isValidSubscription(parts[1]) else { throw field.fail("queue \"\(parts[1])\" is not a valid queue") }
        }
        return subjects
    }

    /// `allow_responses: true` or `{ max, expires }` (0 keeps a default; negative means unlimited).
    static func parseResponsePermission(_ field: ConfigField) throws -> ResponsePermission? {
        switch field.value {
        case .bool(let on):
            return on ? ResponsePermission() : nil
        case .map(let map):
            var permission = ResponsePermission()
            for entry in map.entries {
                let sub = ConfigField(entry: entry, name: "\(field.name).\(entry.key)")
                switch entry.key.lowercased() {
                case "max", "max_msgs", "max_messages", "max_responses":
                    let n = Int(try sub.integer(in: Int64(Int32.min) ... Int64(Int32.max)))
                    if n != 0 { permission.maxMessages = n }
                case "expires", "expiration", "ttl":
                    guard case .string(let text) = sub.value else {
                        throw sub.fail("error parsing expires, not a duration string")
                    }
                    switch GoDuration.parse(text) {
                    case .success(let ns): if ns != 0 { permission.expires = .nanoseconds(ns) }
                    case .failure(let problem): throw sub.fail("error parsing expires: \(problem.reason)")
                    }
                default:
                    if !entry.usedAsVariable { throw sub.fail("Unknown field \"\(entry.key)\" parsing permissions") }
                }
            }
            return permission
        default:
            throw field.fail("error parsing response permissions, expected a boolean or a map")
        }
    }

    /// `no_auth_user` must name a user or nkey of `authorization` (nats-server's validateNoAuthUser).
    static func validateNoAuthUser(_ options: BrokerOptions, field: ConfigField) throws(ConfigError) {
        guard let name = options.noAuthUser else { return }
        let auth = options.authorization
        if (auth?.users.isEmpty ?? true) && (auth?.nkeys.isEmpty ?? true) {
            throw field.fail("no_auth_user: \"\(name)\" present, but users/nkeys are not defined")
        }
        if auth?.hasUser(name) == true { return }
        throw field.fail("no_auth_user: \"\(name)\" not present as user or nkey in authorization block or account configuration")
    }
}
