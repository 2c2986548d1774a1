import NIOCore
import Protocol

/// One user's permissions, compiled: the decisions nats-server's client.go makes (`pubAllowed`, `canSubscribe`,
/// `checkDenySub`), over bytes, with the same quirks. Immutable and shared by every connection of that user, on
/// any loop. A subscription's subject is matched against the permission patterns as a literal (so `FALCO.*`
/// allows subscribing to `FALCO.>`, as nats-server's sublist does).
public final class PermissionRules: Sendable {
    struct Entry: Sendable, Equatable {
        let subject: [UInt8]
        let queue: [UInt8]?
    }

    /// nil: every subject may be published to (an empty list allows none).
    let publishAllow: [[UInt8]]?
    let publishDeny: [[UInt8]]
    /// nil: every subject may be subscribed to (nats-server treats an empty allow list the same way).
    let subscribeAllow: [Entry]?
    let subscribeDeny: [Entry]
    let response: ResponsePermission?

    /// nats-server's system queue group, never allowed to clients.
    static let systemQueue = Array("_sys_".utf8)

    public init(_ permissions: Permissions) {
        var publish = permissions.publish
        if permissions.response != nil, publish?.allow == nil {
            // allow_responses turns the blanket publish allow off (nats-server's validateResponsePermissions).
            publish = SubjectPermission(allow: [], deny: publish?.deny)
        }
        publishAllow = publish?.allow.map { $0.map { Array($0.utf8) } }
        publishDeny = (publish?.deny ?? []).map { Array($0.utf8) }
        let allow = permissions.subscribe?.allow ?? []
        subscribeAllow = allow.isEmpty ? nil : allow.map(Self.entry)
        subscribeDeny = (permissions.subscribe?.deny ?? []).map(Self.entry)
        response = permissions.response
    }

    /// "subject" or "subject queue".
    static func entry(_ text: String) -> Entry {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { Array($0.utf8) }
        return Entry(subject: parts.first ?? [], queue: parts.count > 1 ? parts[1] : nil)
    }

    /// Whether any publish restriction exists (otherwise the publish path skips the check entirely).
    var restrictsPublish: Bool { publishAllow != nil || !publishDeny.isEmpty }

    /// The static publish decision (allow, then deny), without `allow_responses`.
    func allowsPublish(_ subject: UnsafeRawBufferPointer) -> Bool {
        if let allow = publishAllow {
            guard allow.contains(where: { pattern in pattern.withUnsafeBytes { Subject.matches(filter: $0, subject: subject) } })
            else { return false }
        }
        return !publishDeny.contains { pattern in pattern.withUnsafeBytes { Subject.matches(filter: $0, subject: subject) } }
    }

    func allowsPublish(_ subject: ByteBuffer) -> Bool {
        subject.withUnsafeReadableBytes { allowsPublish($0) }
    }

    /// nats-server's canSubscribe: allow (a queue subscription is decided by the queue entries that match, when
    /// there are any), then deny (a plain deny entry, or a queue entry naming this queue).
    func allowsSubscribe(subject: [UInt8], queue: [UInt8]?) -> Bool {
        if let queue, queue == Self.systemQueue { return false }
        if let allow = subscribeAllow {
            let (plain, queues) = Self.match(allow, subject)
            var allowed = plain
            if let queue, !queues.isEmpty { allowed = Self.queueMatches(queue, queues) }
            if !allowed { return false }
        }
        if !subscribeDeny.isEmpty {
            let (plain, queues) = Self.match(subscribeDeny, subject)
            if plain { return false }
            if let queue, !queues.isEmpty, Self.queueMatches(queue, queues) { return false }
        }
        return true
    }

    /// The deny entries a subscription that was allowed may still see messages of (a wildcard, or a queue
    /// subscription, overlapping a deny entry): those messages are filtered at delivery. nil when none can.
    func deliveryFilter(subject: [UInt8], queue: [UInt8]?) -> DeliveryFilter? {
        guard !subscribeDeny.isEmpty, queue != nil || Subject.hasWildcard(subject) else { return nil }
        let text = String(decoding: subject, as: UTF8.self)
        let colliding = subscribeDeny.filter { Subject.overlaps(String(decoding: $0.subject, as: UTF8.self), text) }
        return colliding.isEmpty ? nil : DeliveryFilter(deny: colliding, queue: queue)
    }

    /// Which entries match `subject` (as a literal): whether a plain one does, and the queues of those with one.
    static func match(_ entries: [Entry], _ subject: [UInt8]) -> (plain: Bool, queues: [[UInt8]]) {
        var plain = false
        var queues: [[UInt8]] = []
        for entry in entries where Subject.matches(filter: entry.subject, subject: subject) {
            if let queue = entry.queue { queues.append(queue) } else { plain = true }
        }
        return (plain, queues)
    }

    /// nats-server's queueMatches: the same name, or a wildcard queue entry that takes it.
    static func queueMatches(_ queue: [UInt8], _ names: [[UInt8]]) -> Bool {
        names.contains { name in
            name == queue || (Subject.hasWildcard(name) && Subject.matches(filter: name, subject: queue))
        }
    }
}

/// The deny entries that apply to one subscription's deliveries (nats-server's checkDenySub). Checked when the
/// trie matches a subject (cache misses only), so a denied message never enters a match result.
final class DeliveryFilter: Sendable {
    let deny: [PermissionRules.Entry]
    let queue: [UInt8]?

    init(deny: [PermissionRules.Entry], queue: [UInt8]?) {
        self.deny = deny
        self.queue = queue
    }

    func denies(_ subject: [UInt8]) -> Bool {
        let (plain, queues) = PermissionRules.match(deny, subject)
        if plain { return true }
        if let queue, !queues.isEmpty { return PermissionRules.queueMatches(queue, queues) }
        return false
    }
}
