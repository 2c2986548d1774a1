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
    private final class Level {
        var literals: [Substring: Node] = [:]
        var partialWildcard: Node?
        var fullWildcard: Node?
        var isEmpty: Bool { literals.isEmpty && partialWildcard == nil && fullWildcard == nil }
    }

    private final class Node {
        var next: Level?
        var plain: [ObjectIdentifier: Subscription] = [:]
        var queues: [String: [ObjectIdentifier: Subscription]] = [:]
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

    public func insert(_ sub: Subscription) throws(Error) {
        guard Subject.isValidSubscription(sub.subject) else { throw .invalidSubject }
        lock.withLock {
            var level = root
            var node: Node!
            let tokens = sub.subject.split(separator: ".", omittingEmptySubsequences: false)
            for (i, token) in tokens.enumerated() {
                if token == "*" {
                    node = level.partialWildcard ?? Node()
                    level.partialWildcard = node
                } else if token == ">" {
                    node = level.fullWildcard ?? Node()
                    level.fullWildcard = node
                } else {
                    let key = Substring(String(token))  // own storage: don't pin the whole subject string
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
            if let queue = sub.queue {
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
            let tokens = sub.subject.split(separator: ".", omittingEmptySubsequences: false)
            var path: [(Level, Substring)] = []
            var level: Level? = root
            var node: Node?
            for token in tokens {
                guard let l = level else { return false }
                path.append((l, token))
                switch token {
                case "*": node = l.partialWildcard
                case ">": node = l.fullWildcard
                default: node = l.literals[token]
                }
                guard let n = node else { return false }
                level = n.next
            }
            guard let node else { return false }
            let id = ObjectIdentifier(sub)
            if let queue = sub.queue {
                guard node.queues[queue]?.removeValue(forKey: id) != nil else { return false }
                if node.queues[queue]?.isEmpty == true { node.queues[queue] = nil }
            } else {
                guard node.plain.removeValue(forKey: id) != nil else { return false }
            }
            // Prune empty nodes bottom-up so the trie does not grow without bound under churn.
            for (l, token) in path.reversed() {
                let n: Node?
                switch token {
                case "*": n = l.partialWildcard
                case ">": n = l.fullWildcard
                default: n = l.literals[token]
                }
                guard let n, n.isEmpty else { break }
                switch token {
                case "*": l.partialWildcard = nil
                case ">": l.fullWildcard = nil
                default: l.literals[token] = nil
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
        matches.add(1, ordering: .relaxed)
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
        // A subject with an empty token ("foo..bar", ".foo") matches nothing, not even ">" (nats-server).
        if tokens.contains(where: \.isEmpty) { return .empty }
        return lock.withLock {
            var plain: [Subscription] = []
            var queues: [String: [Subscription]] = [:]
            Self.match(level: root, tokens: tokens[...], plain: &plain, queues: &queues)
            if plain.isEmpty && queues.isEmpty { return .empty }
            return SublistResult(plain: plain, queues: Array(queues.values))
        }
    }

    private static func collect(_ node: Node, plain: inout [Subscription], queues: inout [String: [Subscription]]) {
        plain.append(contentsOf: node.plain.values)
        for (name, members) in node.queues {
            queues[name, default: []].append(contentsOf: members.values)
        }
    }

    private static func match(level: Level, tokens: ArraySlice<Substring>, plain: inout [Subscription],
                              queues: inout [String: [Subscription]]) {
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
