import NIOConcurrencyHelpers
import NIOCore
import Protocol
import Synchronization

/// What a subject matches: every plain subscription, and each queue group's members (one gets the message).
public final class SublistResult: Sendable {
    public let plain: [Subscription]
    public let queues: [[Subscription]]

    init(plain: [Subscription], queues: [[Subscription]]) {
        self.plain = plain
        self.queues = queues
    }

    public var isEmpty: Bool { plain.isEmpty && queues.isEmpty }
    static let empty = SublistResult(plain: [], queues: [])
}

/// The subject trie, after nats-server's sublist.go: one level per token, with `*` and `>` nodes beside the
/// literal ones. Inserts and removals take the lock and bump `generation`; the publish path does not come here
/// at all while its per-loop `MatchCache` (keyed by subject, checked against `generation`) still holds.
public final class Sublist: @unchecked Sendable {
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
        var plain: [ObjectIdentifier: Subscription] = [:]
        var queues: [[UInt8]: [ObjectIdentifier: Subscription]] = [:]
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

    public init() {}

    public var count: Int { lock.withLock { _count } }
    public var statistics: (inserts: UInt64, removes: UInt64, count: Int) {
        lock.withLock { (inserts, removes, _count) }
    }

    static func tokens(_ subject: [UInt8]) -> [Token] {
        subject.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    }

    static let star: Token = [UInt8(ascii: "*")]
    static let greater: Token = [UInt8(ascii: ">")]

    public func insert(_ sub: Subscription) throws(Error) {
        let valid = sub.subjectBytes.withUnsafeBytes { Subject.isValid($0, literalOnly: false) }
        guard valid else { throw .invalidSubject }
        lock.withLock {
            var level = root
            var node: Node!
            let tokens = Self.tokens(sub.subjectBytes)
            for (i, token) in tokens.enumerated() {
                if token == Self.star {
                    node = level.partialWildcard ?? Node()
                    level.partialWildcard = node
                } else if token == Self.greater {
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
    public func remove(_ sub: Subscription) -> Bool {
        lock.withLock {
            let tokens = Self.tokens(sub.subjectBytes)
            var path: [(Level, Token)] = []
            var level: Level? = root
            var node: Node?
            for token in tokens {
                guard let l = level else { return false }
                path.append((l, token))
                if token == Self.star {
                    node = l.partialWildcard
                } else if token == Self.greater {
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
                let isStar = token == Self.star, isGreater = token == Self.greater
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
    public func match(_ subject: String) -> SublistResult {
        match(Array(subject.utf8))
    }

    /// All subscriptions matching a literal subject, given as bytes.
    public func match(_ subject: [UInt8]) -> SublistResult {
        matches.add(1, ordering: .relaxed)
        let tokens = Self.tokens(subject)
        // A subject with an empty token ("foo..bar", ".foo") matches nothing, not even ">" (nats-server).
        if tokens.contains(where: \.isEmpty) { return .empty }
        return lock.withLock {
            var plain: [Subscription] = []
            var queues: [[UInt8]: [Subscription]] = [:]
            Self.match(level: root, tokens: tokens[...], plain: &plain, queues: &queues)
            if plain.isEmpty && queues.isEmpty { return .empty }
            return SublistResult(plain: plain, queues: Array(queues.values))
        }
    }

    private static func collect(_ node: Node, plain: inout [Subscription], queues: inout [[UInt8]: [Subscription]]) {
        plain.append(contentsOf: node.plain.values)
        for (name, members) in node.queues {
            queues[name, default: []].append(contentsOf: members.values)
        }
    }

    private static func match(level: Level, tokens: ArraySlice<Token>, plain: inout [Subscription],
                              queues: inout [[UInt8]: [Subscription]]) {
        guard let token = tokens.first else { return }
        let rest = tokens.dropFirst()
        if let fwc = level.fullWildcard {
            collect(fwc, plain: &plain, queues: &queues)
        }
        if let pwc = level.partialWildcard {
            if rest.isEmpty {
                collect(pwc, plain: &plain, queues: &queues)
            } else if let next = pwc.next {
                match(level: next, tokens: rest, plain: &plain, queues: &queues)
            }
        }
        if let lit = level.literals[token] {
            if rest.isEmpty {
                collect(lit, plain: &plain, queues: &queues)
            } else if let next = lit.next {
                match(level: next, tokens: rest, plain: &plain, queues: &queues)
            }
        }
    }
}
