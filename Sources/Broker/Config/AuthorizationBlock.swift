import NATSConfig

extension ConfigLoader {
    /// `authorization { user, password, token, timeout }` (nats-server's parseAuthorization).
    static func applyAuthorization(
        _ block: ConfigField, to options: inout BrokerOptions, defaults: BrokerOptions
    ) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        var user: String?
        var password: String?
        var token: String?
        var timeout = defaults.authTimeout
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
        // As in nats-server the block replaces any earlier credentials; without any it sets none.
        let credentials = BrokerOptions.Authorization(token: given(token), user: given(user), password: given(password))
        options.authorization = credentials == BrokerOptions.Authorization() ? nil : credentials
        options.authTimeout = timeout
    }
}
