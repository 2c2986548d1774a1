import Protocol

/// Who a CONNECT is, by nats-server's rules (auth.go, processClientOrLeafAuthentication), and with which
/// permissions: nkey users (the nonce signed with the user's key), users with passwords (plaintext or bcrypt),
/// users mapped from a TLS client certificate (verify_and_map), `no_auth_user` for a CONNECT without
/// credentials, or the single token or user of `authorization { }`. Built once per configuration (at start and
/// on reload); every user's permissions are compiled here once and shared by all of its connections.
struct Authenticator: Sendable {
    struct User: Sendable {
        let name: String
        let password: String?
        let rules: PermissionRules?
        /// False when `allowed_connection_types` leaves out STANDARD (the client port).
        let admitted: Bool

        init(name: String, password: String?, permissions: Permissions?, connectionTypes: [String]?) {
            self.name = name
            self.password = password
            self.rules = permissions.map(PermissionRules.init)
            admitted = (connectionTypes ?? []).isEmpty || connectionTypes!.contains("STANDARD")
        }
    }

    /// The outcome of one CONNECT.
    enum Result: Sendable {
        case denied
        /// `user` is the name or nkey the client authenticated as (nil without auth or for a token);
        /// `rules` nil means no restrictions.
        case allowed(user: String?, rules: PermissionRules?)

        var isAllowed: Bool {
            if case .allowed = self { return true }
            return false
        }
    }

    let required: Bool
    let token: String?
    let singleUser: String?
    let singlePassword: String?
    let users: [String: User]
    let nkeys: [String: User]
    let noAuthUser: String?
    /// Whether verify_and_map is on: users are then found from the client certificate.
    let mapsCertificates: Bool

    init(options: BrokerOptions, mapsCertificates: Bool = false) {
        let auth = options.authorization
        token = auth?.token
        singleUser = auth?.user
        singlePassword = auth?.password
        var users: [String: User] = [:]
        for user in auth?.users ?? [] {
            users[user.name] = User(name: user.name, password: user.password, permissions: user.permissions,
                                    connectionTypes: user.connectionTypes)
        }
        var nkeys: [String: User] = [:]
        for nkey in auth?.nkeys ?? [] {
            nkeys[nkey.publicKey] = User(name: nkey.publicKey, password: nil, permissions: nkey.permissions,
                                         connectionTypes: nkey.connectionTypes)
        }
        self.users = users
        self.nkeys = nkeys
        required = token != nil || singleUser != nil || !users.isEmpty || !nkeys.isEmpty
        noAuthUser = options.noAuthUser
        self.mapsCertificates = mapsCertificates
    }

    /// INFO's `nonce` is sent when nkey users exist.
    var nonceRequired: Bool { !nkeys.isEmpty }

    /// INFO's `auth_required`: false when a CONNECT without credentials gets the no_auth_user (as nats-server).
    var infoAuthRequired: Bool { required && noAuthUser == nil }

    /// Whether checking this CONNECT means a bcrypt comparison (tens of milliseconds: run it off the loops).
    func isExpensive(_ connect: ConnectOptions) -> Bool {
        guard required else { return false }
        if let token { return Secrets.isBcrypt(token) }
        if let singlePassword { return Secrets.isBcrypt(singlePassword) }
        if mapsCertificates {
            // The user comes from the certificate, not from CONNECT: any bcrypt password may be the one checked.
            return users.values.contains { $0.password.map(Secrets.isBcrypt) ?? false }
        }
        if let name = connect.user, let password = users[name]?.password { return Secrets.isBcrypt(password) }
        return false
    }

    /// Whether any configured password or token is plaintext (nats-server warns at start-up).
    var hasPlaintextPasswords: Bool {
        if let singlePassword, !Secrets.isBcrypt(singlePassword) { return true }
        return users.values.contains { user in
            guard let password = user.password, !password.isEmpty else { return false }
            return !Secrets.isBcrypt(password)
        }
    }

    /// Checks one CONNECT. `nonce` is what INFO offered; `certificateIdentities` are the client certificate's
    /// names in nats-server's order (email, DNS and URI SANs, then the RFC 2253 subject) when verify_and_map is
    /// on, nil otherwise.
    func authenticate(_ connect: ConnectOptions, nonce: [UInt8], certificateIdentities: [String]? = nil) -> Result {
        guard required else { return .allowed(user: nil, rules: nil) }
        let noCredentials = (connect.user ?? "").isEmpty && (connect.pass ?? "").isEmpty
            && (connect.authToken ?? "").isEmpty
        if !nkeys.isEmpty {
            var key = connect.nkey ?? ""
            if key.isEmpty, noCredentials, let noAuthUser, nkeys[noAuthUser] != nil { key = noAuthUser }
            if !key.isEmpty {
                guard let user = nkeys[key], user.admitted else { return .denied }
                if key != noAuthUser {
                    guard let sig = connect.sig, !sig.isEmpty,
                          NKey.verify(publicKey: key, signature: sig, nonce: nonce)
                    else { return .denied }
                }
                return .allowed(user: user.name, rules: user.rules)
            }
        }
        if !users.isEmpty {
            if mapsCertificates {
                guard let identities = certificateIdentities,
                      let user = identities.lazy.compactMap({ users[$0] }).first, user.admitted
                else { return .denied }
                guard Secrets.matches(configured: user.password ?? "", given: connect.pass ?? "") else { return .denied }
                return .allowed(user: user.name, rules: user.rules)
            }
            if noCredentials, let noAuthUser, let user = users[noAuthUser], user.admitted {
                return .allowed(user: user.name, rules: user.rules)
            }
            if let name = connect.user, !name.isEmpty {
                guard let user = users[name], user.admitted else { return .denied }
                guard Secrets.matches(configured: user.password ?? "", given: connect.pass ?? "") else { return .denied }
                return .allowed(user: user.name, rules: user.rules)
            }
        }
        if let token {
            return Secrets.matches(configured: token, given: connect.authToken ?? "") ? .allowed(user: nil, rules: nil) : .denied
        }
        if let singleUser {
            guard connect.user == singleUser else { return .denied }
            return Secrets.matches(configured: singlePassword ?? "", given: connect.pass ?? "")
                ? .allowed(user: singleUser, rules: nil) : .denied
        }
        return .denied
    }
}
