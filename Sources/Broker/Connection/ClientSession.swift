import NIOCore
import Protocol

/// The rules of one client session, as plain values: what to do on CONNECT, PUB, SUB and UNSUB (auth, verbose
/// and pedantic replies, subject checks; permissions belong here next), on the auth timer, on the ping timer and
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

    init(authRequired: Bool, pingMax: Int) {
        state = authRequired ? .awaitingConnect : .open
        self.pingMax = pingMax
    }

    var isClosed: Bool { state == .closed }

    /// CONNECT arrived with these options; `authenticated` is the credential check's verdict. As nats-server,
    /// every CONNECT is checked (a second one too), in its order: credentials, protocol level, no_responders.
    mutating func connectReceived(_ options: ConnectOptions, authRequired: Bool, authenticated: Bool) -> ConnectAction {
        switch state {
        case .closed:
            return .accept(sendOK: false)
        case .awaitingConnect, .open:
            if authRequired && !authenticated { return .reject(.authorizationViolation) }
            if options.protocolVersion < 0 || options.protocolVersion > 1 { return .reject(.invalidClientProtocol) }
            if options.noResponders && !options.headers { return .reject(.noRespondersRequiresHeaders) }
            state = .open
            self.options = options
            return .accept(sendOK: options.verbose)
        }
    }

    /// What to do with a PUB/HPUB: it is always routed (nats-server delivers a message whose subject pedantic
    /// mode reports), after the error and the +OK this returns.
    struct PublishAction: Equatable {
        var error: ProtocolError?
        var sendOK: Bool
    }

    @inline(__always)
    func publishReceived(subject: ByteBuffer) -> PublishAction {
        // nats-server reports it and still delivers the message (client.go processPub).
        let error: ProtocolError? = options.pedantic && !Subject.isValidPublish(subject) ? .invalidPublishSubject : nil
        return PublishAction(error: error, sendOK: options.verbose)
    }

    enum SubscribeAction: Equatable {
        /// Add the subscription; +OK when verbose.
        case subscribe(sendOK: Bool)
        /// A reused sid: nats-server keeps the first subscription (and still says +OK when verbose).
        case keepExisting(sendOK: Bool)
        /// The error (the connection stays open).
        case reject(ProtocolError)
    }

    func subscribeReceived(subject: ByteBuffer, sidInUse: Bool) -> SubscribeAction {
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
