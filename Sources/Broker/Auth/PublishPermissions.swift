import NIOConcurrencyHelpers
import NIOCore
import Protocol

/// One connection's publish check: the user's rules behind a per-subject cache (nats-server's pcache, at most
/// 128 subjects), with the last subject first, so a publisher that repeats its subject pays one memcmp. Loop-
/// confined (owned by the session). Reply subjects a user with `allow_responses` was sent are checked in
/// `replies`, outside the cache, as nats-server does. A class, so the session's (otherwise immutable) call per PUB
/// updates it in place.
final class PublishPermissions {
    static let maxCached = 128
    static let pruneCount = 32

    let rules: PermissionRules
    let replies: ReplyPermits?
    private var lastSubject = ByteBuffer()
    private var lastAllowed = false
    private var cache: [ByteBuffer: Bool] = [:]

    init(rules: PermissionRules, replies: ReplyPermits?) {
        self.rules = rules
        self.replies = replies
    }

    @inline(__always)
    func allows(_ subject: ByteBuffer, now: NIODeadline) -> Bool {
        if lastSubject.readableBytes > 0, subject == lastSubject, lastAllowed { return true }
        let allowed: Bool
        if let cached = cache[subject] {
            allowed = cached
        } else {
            allowed = rules.allowsPublish(subject)
            if cache.count >= Self.maxCached {
                for _ in 0..<Self.pruneCount { cache.remove(at: cache.startIndex) }
            }
            cache[ByteBuffer.compactCopy(of: subject)] = allowed
        }
        if allowed {
            lastSubject.clear()
            lastSubject.writeImmutableBuffer(subject)
            lastAllowed = true
            return true
        }
        // A response to a request this user received (not cached: each permit is used up).
        return replies?.consume(subject, now: now) ?? false
    }
}

/// The reply subjects a user with `allow_responses` may publish to: recorded when a request is delivered to it
/// (on whichever loop routes that request), used up by its responses (on its own loop), so behind a lock; only
/// users with `allow_responses` have one.
final class ReplyPermits: Sendable {
    private struct Permit {
        var granted: NIODeadline
        var used: Int
    }

    let permission: ResponsePermission
    /// The user's rules: a reply subject it may publish to anyway needs no permit.
    let rules: PermissionRules
    private let permits = NIOLockedValueBox<[ByteBuffer: Permit]>([:])
    /// Expired permits are swept every this many new ones once there are over `pruneAbove`; past `maxPermits`
    /// the oldest go (a flood of requests with unique reply subjects cannot grow this without bound).
    static let pruneEvery = 100
    static let pruneAbove = 1_000
    static let maxPermits = 65_536

    init(_ permission: ResponsePermission, rules: PermissionRules) {
        self.permission = permission
        self.rules = rules
    }

    /// A request with this reply subject was delivered to the user (on any loop).
    func requestDelivered(replyTo reply: ByteBuffer) {
        guard !rules.allowsPublish(reply) else { return }
        record(reply, now: .now())
    }

    private var expires: TimeAmount? {
        permission.expires > .zero ? TimeAmount(permission.expires) : nil
    }

    func record(_ reply: ByteBuffer, now: NIODeadline) {
        let key = ByteBuffer.compactCopy(of: reply)
        permits.withLockedValue { permits in
            permits[key] = Permit(granted: now, used: 0)
            if permits.count > Self.pruneAbove, permits.count % Self.pruneEvery == 0 { prune(&permits, now: now) }
            if permits.count > Self.maxPermits {
                prune(&permits, now: now)
                // Still over: a tenth goes (arbitrary ones: a flood's permits, most likely).
                while permits.count > Self.maxPermits * 9 / 10 { permits.remove(at: permits.startIndex) }
            }
        }
    }

    func consume(_ subject: ByteBuffer, now: NIODeadline) -> Bool {
        permits.withLockedValue { permits in
            guard var permit = permits[subject] else { return false }
            permit.used += 1
            if permission.maxMessages > 0 && permit.used > permission.maxMessages {
                permits[subject] = nil
                return false
            }
            if let expires, now - permit.granted > expires {
                permits[subject] = nil
                return false
            }
            permits[subject] = permission.maxMessages > 0 && permit.used >= permission.maxMessages ? nil : permit
            return true
        }
    }

    private func prune(_ permits: inout [ByteBuffer: Permit], now: NIODeadline) {
        guard let expires else { return }
        permits = permits.filter { now - $0.value.granted <= expires }
    }

    var count: Int { permits.withLockedValue { $0.count } }
}
