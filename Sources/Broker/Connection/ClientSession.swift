import NIOCore
import Protocol

/// The rules of one client session, as plain values: what to do on CONNECT, PUB, SUB and UNSUB (auth, verbose
/// and pedantic replies, subject checks, the user's permissions), on the auth timer, on the ping timer and
/// on PONG. `ClientConnection` feeds it events and carries out the actions it returns, so these rules are tested
/// without a socket, a clock or a thread.
struct ClientSession {
    enum State: Equatable {
        /// Waiting for CONNECT: only while the server requires auth.
        case awaitingConnect
        case open
        case closed
    }

    enum ConnectAction: Equatable {
        /// Accepted: start or keep going; `sendOK` when the client asked for verbose mode.
        case accept(sendOK: Bool)
        /// Send the error (if it has wire text) and close.
        case reject(ProtocolError)
    }

    enum PingAction: Equatable {
        case none
        case sendPing
        /// ping_max PINGs went unanswered: 'Stale Connection', then close.
        case closeStale
    }

    /// What the client's CONNECT said (defaults until it arrives: verbose, pedantic, echo on, as nats-server).
    private(set) var options = ConnectOptions()
    private(set) var state: State
    private(set) var pingsOutstanding = 0
    /// Whether a PONG has come back since connect: until then nats-server PINGs on every tick (to measure RTT).
    private(set) var rttMeasured = false
    let pingMax: Int
    /// Who the client authenticated as (a user name or nkey; nil without auth or with a token).
    private(set) var user: String?
    /// The user's permissions; nil: no restrictions.
    private(set) var rules: PermissionRules?
    private var publishPermissions: PublishPermissions?
    /// For a user with `allow_responses`: the reply subjects it may answer (shared with its subscriptions).
    private(set) var replyPermits: ReplyPermits?

    init(authRequired: Bool, pingMax: Int) {
        state = authRequired ? .awaitingConnect : .open
        self.pingMax = pingMax
    }

    var isClosed: Bool { state == .closed }

    /// CONNECT arrived with these options; `verdict` is the `Authenticator`'s. As nats-server, every CONNECT is
    /// checked (a second one too), in its order: credentials, protocol level, no_responders. An accepted
    /// CONNECT takes the user's permissions.
    mutating func connectReceived(_ options: ConnectOptions, verdict: Authenticator.Result) -> ConnectAction {
        switch state {
        case .closed:
            return .accept(sendOK: false)
        case .awaitingConnect, .open:
            guard case .allowed(let user, let rules) = verdict else { return .reject(.authorizationViolation) }
            if options.protocolVersion < 0 || options.protocolVersion > 1 { return .reject(.invalidClientProtocol) }
            if options.noResponders && !options.headers { return .reject(.noRespondersRequiresHeaders) }
            state = .open
            self.options = options
            self.user = user
            setPermissions(rules)
            return .accept(sendOK: options.verbose)
        }
    }

    /// New permissions (at CONNECT, or after a reload): the publish cache starts empty.
    mutating func setPermissions(_ rules: PermissionRules?) {
        self.rules = rules
        if let rules, let response = rules.response {
            if replyPermits?.rules !== rules { replyPermits = ReplyPermits(response, rules: rules) }
        } else {
            replyPermits = nil
        }
        publishPermissions = rules.flatMap { $0.restrictsPublish ? PublishPermissions(rules: $0, replies: replyPermits) : nil }
    }

    /// What to do with a PUB/HPUB: send `error` (pedantic mode's invalid subject: nats-server still delivers
    /// the message), then, unless `violation` says why not, route it and send +OK when `sendOK`.
    struct PublishAction: Equatable {
        var error: ProtocolError?
        var violation: ProtocolError?
        var sendOK: Bool
    }

    /// nats-server's order (client.go processPub, processInboundClientMsg): the pedantic subject check, the
    /// reserved `_GR_.` prefix, the user's publish permissions (then a permitted response), the reserved
    /// `$NRG.` prefix, reserved reply subjects.
    @inline(__always)
    /// `mutating` though it changes nothing: the connection then calls it in place, where a non-mutating call on
    /// its stored session copied the whole session (a retain and release of each field) per message (perf).
    mutating func publishReceived(subject: ByteBuffer, reply: ByteBuffer?, now: @autoclosure () -> NIODeadline) -> PublishAction {
        let error: ProtocolError? = options.pedantic && !Subject.isValidPublish(subject) ? .invalidPublishSubject : nil
        if Self.hasPrefix(subject, Self.gatewayReplyPrefix)
            || (publishPermissions.map { !$0.allows(subject, now: now()) } ?? false)
            || Self.hasPrefix(subject, Self.raftPrefix) {
            return PublishAction(error: error, violation: .publishViolation(subject: Array(subject.readableBytesView)), sendOK: false)
        }
        if let reply, Self.isReservedReply(reply) {
            return PublishAction(error: error, violation: .replyViolation(reply: Array(reply.readableBytesView)), sendOK: false)
        }
        return PublishAction(error: error, violation: nil, sendOK: options.verbose)
    }

    static let gatewayReplyPrefix = Array("_GR_.".utf8)
    static let raftPrefix = Array("$NRG.".utf8)
    static let serviceReplyPrefix = Array("_R_.".utf8)
    static let jetStreamAckPrefix = Array("$JS.ACK.".utf8)

    /// nats-server's isReservedReply: service-import replies, JetStream acks and gateway-routed replies.
    static func isReservedReply(_ reply: ByteBuffer) -> Bool {
        hasPrefix(reply, serviceReplyPrefix) || hasPrefix(reply, jetStreamAckPrefix) || hasPrefix(reply, gatewayReplyPrefix)
    }

    /// Longer than the prefix and starting with it (nats-server's checks need at least one byte after it).
    @inline(__always)
    static func hasPrefix(_ subject: ByteBuffer, _ prefix: [UInt8]) -> Bool {
        guard subject.readableBytes > prefix.count, let first = subject.getInteger(at: subject.readerIndex, as: UInt8.self),
              first == prefix[0] else { return false }
        return subject.withUnsafeReadableBytes { bytes in
            for i in 1..<prefix.count where bytes[i] != prefix[i] { return false }
            return true
        }
    }

    enum SubscribeAction: Equatable {
        /// Add the subscription; +OK when verbose.
        case subscribe(sendOK: Bool)
        /// A reused sid: nats-server keeps the first subscription (and still says +OK when verbose).
        case keepExisting(sendOK: Bool)
        /// The error (the connection stays open).
        case reject(ProtocolError)
    }

    /// nats-server's order (processSub): permissions, a reused sid, the subject's validity.
    func subscribeReceived(subject: ByteBuffer, queue: ByteBuffer?, sidInUse: Bool) -> SubscribeAction {
        if let rules {
            let subjectBytes = Array(subject.readableBytesView)
            let queueBytes = queue.map { Array($0.readableBytesView) }
            if !rules.allowsSubscribe(subject: subjectBytes, queue: queueBytes) {
                return .reject(.subscriptionViolation(subject: subjectBytes, queue: queueBytes))
            }
        }
        if sidInUse { return .keepExisting(sendOK: options.verbose) }
        guard Subject.isValidSubscription(subject) else { return .reject(.invalidSubject) }
        return .subscribe(sendOK: options.verbose)
    }

    /// UNSUB: whether to say +OK.
    func unsubscribeReceived() -> Bool { options.verbose }

    /// The auth timer fired: true when the client must get 'Authentication Timeout'.
    func authTimerExpired() -> Bool {
        switch state {
        case .awaitingConnect: return true
        case .open, .closed: return false
        }
    }

    /// The ping timer fired. `idle` is the time since the client last sent anything.
    mutating func pingTimerFired(idle: TimeAmount, interval: TimeAmount) -> PingAction {
        switch state {
        case .closed:
            return .none
        case .awaitingConnect, .open:
            // As nats-server: no PING while the client has sent something within the interval (once the RTT is known).
            if rttMeasured && idle < interval { return .none }
            if pingsOutstanding + 1 > pingMax { return .closeStale }
            pingsOutstanding += 1
            return .sendPing
        }
    }

    mutating func pongReceived() {
        pingsOutstanding = 0
        rttMeasured = true
    }

    /// Marks the connection closed; false when it already was (so teardown runs once).
    mutating func close() -> Bool {
        switch state {
        case .closed: return false
        case .awaitingConnect, .open:
            state = .closed
            return true
        }
    }
}
