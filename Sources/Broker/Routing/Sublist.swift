import NIOConcurrencyHelpers
import NIOCore
import Protocol
import Synchronization

/// What the trie holds: anything with a subject (and maybe a queue group), compared by identity. brokerd's
/// `Subscription` is one (a client's or an internal handler's); tests use plain values.
public protocol SublistEntry: AnyObject, Sendable {
    /// The subject's bytes exactly as given (compared bytewise, as nats-server does).
    var subjectBytes: [UInt8] { get }
    var queueBytes: [UInt8]? { get }
    /// Whether a message on `subject` may reach this entry (a subscription whose user may not read some of
    /// what its wildcard matches: nats-server's delivery-time deny check). Asked when the trie matches, so a
    /// refused entry never enters a match result or a cache.
    func accepts(subject: [UInt8]) -> Bool
}

extension SublistEntry {
    public func accepts(subject: [UInt8]) -> Bool { true }
}

/// What a subject matches: every plain entry, and each queue group's members (one gets the message).
public final class SublistResult<Entry: SublistEntry>: Sendable {
    public let plain: [Entry]
    public let queues: [[Entry]]

    init(plain: [Entry], queues: [[Entry]]) {
        self.plain = plain
        self.queues = queues
    }

    public var isEmpty: Bool { plain.isEmpty && queues.isEmpty }
}

/// The subject trie, after nats-server's sublist.go: one level per token, with `*` and `>` nodes beside the
/// literal ones. Inserts and removals take the lock and bump `generation`; the publish path does not come here
/// at all while its per-loop `MatchCache` (keyed by subject, checked against `generation`) still holds.
///
/// It is the one way anything receives messages: client subscriptions and the server's own features
/// (JetStream, the Falco ingest) alike are entries here.
public final class Sublist<Entry: SublistEntry>: @unchecked Sendable {
    /// A token's bytes (keys compare bytewise, as nats-server's do).
    typealias Token = ArraySlice<UInt8>

    private final class Level {
        var literals: [Token: Node] = [:]
        var partialWildcard: Node?
        var fullWildcard: Node?
        var isEmpty: Bool { literals.isEmpty && partialWildcard == nil && fullWildcard == nil }
    }

    private final class Node {
        var next: Level?
        var plain: [ObjectIdentifier: Entry] = [:]
        var queues: [[UInt8]: [ObjectIdentifier: Entry]] = [:]
        var isEmpty: Bool { (next?.isEmpty ?? true) && plain.isEmpty && queues.isEmpty }
    }

    public enum Error: Swift.Error, Equatable { case invalidSubject }

    private let lock = NIOLock()
    private let root = Level()
    private var _count = 0
    /// Bumped on every change; caches compare it to know they are stale.
    public let generation = Atomic<UInt64>(0)
    // Statistics for /subsz.
    private(set) var inserts: UInt64 = 0
    private(set) var removes: UInt64 = 0
    let matches = Atomic<UInt64>(0)

    /// The one empty result (so a miss allocates nothing).
    let empty = SublistResult<Entry>(plain: [], queues: [])

    public init() {}

    public var count: Int { lock.withLock { _count } }
    public var statistics: (inserts: UInt64, removes: UInt64, count: Int) {
        lock.withLock { (inserts, removes, _count) }
    }

    static func tokens(_ subject: [UInt8]) -> [Token] {
        subject.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    }

    static func isStar(_ token: Token) -> Bool { token.count == 1 && token.first == UInt8(ascii: "*") }
    static func isGreater(_ token: Token) -> Bool { token.count == 1 && token.first == UInt8(ascii: ">") }

    public func insert(_ sub: Entry) throws(Error) {
        let valid = sub.subjectBytes.withUnsafeBytes { Subject.isValid($0, literalOnly: false) }
        guard valid else { throw .invalidSubject }
        lock.withLock {
            var level = root
            var node: Node!
            let tokens = Self.tokens(sub.subjectBytes)
            for (i, token) in tokens.enumerated() {
                if Self.isStar(token) {
                    node = level.partialWildcard ?? Node()
                    level.partialWildcard = node
                } else if Self.isGreater(token) {
                    node = level.fullWildcard ?? Node()
                    level.fullWildcard = node
                } else {
                    let key = Token(Array(token))  // own storage: don't keep the whole subject array alive
                    node = level.literals[key] ?? Node()
                    level.literals[key] = node
                }
                if i < tokens.count - 1 {
                    let next = node.next ?? Level()
                    node.next = next
                    level = next
                }
            }
            let id = ObjectIdentifier(sub)
            if let queue = sub.queueBytes {
                node.queues[queue, default: [:]][id] = sub
            } else {
                node.plain[id] = sub
            }
            _count += 1
            inserts += 1
            generation.add(1, ordering: .releasing)
        }
    }

    /// Removes `sub`; returns false when it was not there.
    @discardableResult
    public func remove(_ sub: Entry) -> Bool {
        lock.withLock {
            let tokens = Self.tokens(sub.subjectBytes)
            var path: [(Level, Token)] = []
            var level: Level? = root
            var node: Node?
            for token in tokens {
                guard let l = level else { return false }
                path.append((l, token))
                if Self.isStar(token) {
                    node = l.partialWildcard
                } else if Self.isGreater(token) {
                    node = l.fullWildcard
                } else {
                    node = l.literals[token]
                }
                guard let n = node else { return false }
                level = n.next
            }
            guard let node else { return false }
            let id = ObjectIdentifier(sub)
            if let queue = sub.queueBytes {
                guard node.queues[queue]?.removeValue(forKey: id) != nil else { return false }
                if node.queues[queue]?.isEmpty == true { node.queues[queue] = nil }
            } else {
                guard node.plain.removeValue(forKey: id) != nil else { return false }
            }
            // Prune empty nodes bottom-up so the trie does not grow without bound under churn.
            for (l, token) in path.reversed() {
                let isStar = Self.isStar(token), isGreater = Self.isGreater(token)
                let n = isStar ? l.partialWildcard : isGreater ? l.fullWildcard : l.literals[token]
                guard let n, n.isEmpty else { break }
                if isStar {
                    l.partialWildcard = nil
                } else if isGreater {
                    l.fullWildcard = nil
                } else {
                    l.literals[token] = nil
                }
            }
            _count -= 1
            removes += 1
            generation.add(1, ordering: .releasing)
            return true
        }
    }

    /// All subscriptions matching a literal subject.
    public func match(_ subject: String) -> SublistResult<Entry> {
        match(Array(subject.utf8))
    }

    /// All subscriptions matching a literal subject, given as bytes.
    public func match(_ subject: [UInt8]) -> SublistResult<Entry> {
        matches.add(1, ordering: .relaxed)
        // A subject with an empty token ("foo..bar", ".foo", "") matches nothing, not even ">" (nats-server).
        guard Self.hasNoEmptyToken(subject) else { return empty }
        return lock.withLock {
            var plain: [Entry] = []
            var queues: [[UInt8]: [Entry]] = [:]
            Self.match(level: root, subject: subject, from: 0, plain: &plain, queues: &queues)
            if plain.isEmpty && queues.isEmpty { return empty }
            var groups = Array(queues.values)
            if plain.contains(where: { !$0.accepts(subject: subject) }) {
                plain.removeAll { !$0.accepts(subject: subject) }
            }
            if groups.contains(where: { $0.contains { !$0.accepts(subject: subject) } }) {
                groups = groups.map { $0.filter { $0.accepts(subject: subject) } }.filter { !$0.isEmpty }
            }
            if plain.isEmpty && groups.isEmpty { return empty }
            return SublistResult(plain: plain, queues: groups)
        }
    }

    private static func collect(_ node: Node, plain: inout [Entry], queues: inout [[UInt8]: [Entry]]) {
        plain.append(contentsOf: node.plain.values)
        for (name, members) in node.queues {
            queues[name, default: []].append(contentsOf: members.values)
        }
    }

    /// No empty token: not empty, no leading or trailing dot, no two dots in a row.
    static func hasNoEmptyToken(_ subject: [UInt8]) -> Bool {
        let dot = UInt8(ascii: ".")
        guard let first = subject.first, first != dot, subject.last != dot else { return false }
        var previous = first
        for byte in subject.dropFirst() {
            if byte == dot && previous == dot { return false }
            previous = byte
        }
        return true
    }

    /// Matches the token of `subject` that starts at `from` (and the rest after it) against `level`; the tokens
    /// are slices of the subject, found as the walk goes (no array of tokens per match).
    private static func match(level: Level, subject: [UInt8], from: Int, plain: inout [Entry],
                              queues: inout [[UInt8]: [Entry]]) {
        let end = subject[from...].firstIndex(of: UInt8(ascii: ".")) ?? subject.endIndex
        let isLast = end == subject.endIndex
        if let fwc = level.fullWildcard {
            collect(fwc, plain: &plain, queues: &queues)
        }
        if let pwc = level.partialWildcard {
            if isLast {
                collect(pwc, plain: &plain, queues: &queues)
            } else if let next = pwc.next {
                match(level: next, subject: subject, from: end + 1, plain: &plain, queues: &queues)
            }
        }
        if let lit = level.literals[subject[from..<end]] {
            if isLast {
                collect(lit, plain: &plain, queues: &queues)
            } else if let next = lit.next {
                match(level: next, subject: subject, from: end + 1, plain: &plain, queues: &queues)
            }
        }
    }
}
