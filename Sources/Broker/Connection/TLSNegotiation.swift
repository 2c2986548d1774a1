/// How a client connection starts when the client port has TLS, as nats-server's createClient (server/server.go):
///
/// - the default: INFO in the clear, then the client's TLS handshake, which must finish within `timeout`;
/// - `allow_non_tls`: INFO in the clear (`tls_available`), then the client's first byte says which: 0x16 (a TLS
///   handshake record) starts the handshake, anything else is a plain client (so is one silent for `timeout`);
/// - `handshake_first`: the handshake at once, INFO over TLS after it;
/// - `handshake_first` with a fallback delay (`auto`, or a duration): a client that sends anything within the
///   delay gets the handshake; one that sends nothing gets INFO in the clear, then is served as in the first two
///   cases.
///
/// A pure state machine: `TLSNegotiationHandler` feeds it the channel's events and carries out its actions.
struct TLSNegotiation: Equatable {
    enum Mode: Equatable {
        case infoThenHandshake
        case infoThenSniff
        case handshakeFirst(fallback: Duration?, allowNonTLS: Bool)

        init(_ tls: TLSConfig, allowNonTLS: Bool) {
            if tls.handshakeFirst {
                self = .handshakeFirst(fallback: tls.handshakeFirstFallback, allowNonTLS: allowNonTLS)
            } else {
                self = allowNonTLS ? .infoThenSniff : .infoThenHandshake
            }
        }

        /// Whether the connection sends INFO as soon as it is accepted.
        var infoFirst: Bool {
            switch self {
            case .infoThenHandshake, .infoThenSniff: return true
            case .handshakeFirst: return false
            }
        }
    }

    enum State: Equatable {
        case idle
        /// handshake_first with a fallback: waiting for the client's first bytes.
        case awaitingHandshakeFirst(allowNonTLS: Bool)
        /// allow_non_tls: waiting for the first byte.
        case sniffing
        case handshaking(first: Bool)
        case established
        case closed
    }

    enum Action: Equatable {
        /// Wait this long, then `timerFired` (the fallback delay, the sniffing window or the handshake timeout).
        case startTimer(Duration)
        case cancelTimer
        /// INFO in the clear now (handshake_first's fallback), with the server's own `tls_required`.
        case sendInfo
        /// Put the TLS handler in the pipeline; the bytes that arrived go through it.
        case startHandshake
        /// The connection is set: start the client's session (its timers); `secure` when over TLS; `sendInfo`
        /// when INFO is still due (after handshake_first, over TLS, `tls_required: true`).
        case established(secure: Bool, sendInfo: Bool)
        /// The handshake did not finish in time: close (nats-server logs it at debug level and sends nothing).
        case closeTimedOut
    }

    let mode: Mode
    let timeout: Duration
    private(set) var state: State = .idle

    init(mode: Mode, timeout: Duration) {
        self.mode = mode
        self.timeout = timeout
    }

    /// The connection was accepted (INFO already sent when `mode.infoFirst`).
    mutating func channelActive() -> [Action] {
        guard state == .idle else { return [] }
        switch mode {
        case .infoThenHandshake:
            state = .handshaking(first: false)
            return [.startHandshake, .startTimer(timeout)]
        case .infoThenSniff:
            state = .sniffing
            return [.startTimer(timeout)]
        case .handshakeFirst(let fallback?, let allowNonTLS):
            state = .awaitingHandshakeFirst(allowNonTLS: allowNonTLS)
            return [.startTimer(fallback)]
        case .handshakeFirst(nil, _):
            state = .handshaking(first: true)
            return [.startHandshake, .startTimer(timeout)]
        }
    }

    /// Bytes arrived; `firstByte` is the first of them.
    mutating func bytesArrived(firstByte: UInt8) -> [Action] {
        switch state {
        case .awaitingHandshakeFirst:
            // As nats-server: any bytes within the delay mean a handshake-first client (a rogue one fails it).
            state = .handshaking(first: true)
            return [.cancelTimer, .startHandshake, .startTimer(timeout)]
        case .sniffing:
            if firstByte == Self.tlsHandshakeRecord {
                state = .handshaking(first: false)
                return [.cancelTimer, .startHandshake, .startTimer(timeout)]
            }
            state = .established
            return [.cancelTimer, .established(secure: false, sendInfo: false)]
        case .idle, .handshaking, .established, .closed:
            return []
        }
    }

    mutating func timerFired() -> [Action] {
        switch state {
        case .awaitingHandshakeFirst(let allowNonTLS):
            // Nothing came: INFO in the clear after all, then what the server would have done without handshake_first.
            state = allowNonTLS ? .sniffing : .handshaking(first: false)
            return allowNonTLS ? [.sendInfo, .startTimer(timeout)] : [.sendInfo, .startHandshake, .startTimer(timeout)]
        case .sniffing:
            // nats-server reads the first bytes for `timeout` at most; a silent client is a plain one.
            state = .established
            return [.established(secure: false, sendInfo: false)]
        case .handshaking:
            state = .closed
            return [.closeTimedOut]
        case .idle, .established, .closed:
            return []
        }
    }

    mutating func handshakeCompleted() -> [Action] {
        guard case .handshaking(let first) = state else { return [] }
        state = .established
        return [.cancelTimer, .established(secure: true, sendInfo: first)]
    }

    /// The handshake failed, or the connection closed before the negotiation ended.
    mutating func closed() -> [Action] {
        switch state {
        case .established, .closed: return []
        case .idle, .awaitingHandshakeFirst, .sniffing, .handshaking:
            state = .closed
            return [.cancelTimer]
        }
    }

    var isHandshaking: Bool {
        if case .handshaking = state { return true }
        return false
    }

    /// The content type of a TLS handshake record: the first byte a TLS client sends.
    static let tlsHandshakeRecord: UInt8 = 0x16
}
