import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only, crash-safe message store in a directory of blocks.
///
/// - The active block (`<id>.blk`) takes appends; every record carries a CRC-32C, so a torn or corrupt tail is
///   recognised. At open, the active block is scanned and cut at its last good record (reported in
///   `recovery`), so a corrupt record is never served.
/// - A full block is sealed: compressed with LZ4 into `<id>.blk.lz4` (written to a temporary file, fsynced,
///   renamed), then the raw block is removed. Sealing runs on a background thread (`BlockSealer`): appends go
///   on in the next block at once, and the full raw block is read from until its sealed file is in place.
/// - Removals and purges are records too (markers), so they survive restarts.
/// - `sync()` is one fsync for everything appended since the last one: the stream acknowledges a batch of
///   publishes after it (group commit).
public final class FileStore: MessageStore {
    public struct Configuration: Sendable {
        /// Raw bytes per block before it is sealed and compressed.
        public var blockSize: Int = 8 * 1024 * 1024
        /// nats-server allows max_payload up to 64 MB; a record may be larger than a block (it gets its own).
        public var maxMessageSize: Int = 64 * 1024 * 1024
        public init() {}
    }

    /// What opening the store found and repaired.
    public struct Recovery: Equatable, Sendable {
        public var blocks = 0
        public var messages = 0
        /// Bytes cut from the end of the active block (a torn or corrupt tail), and where.
        public var truncatedBytes = 0
        public var truncatedAt: Int?
        public var truncatedBlock: String?
        /// Damage inside the stream (a flipped bit, a block cut short or unreadable): passed over, the rest is
        /// served; each says what was lost.
        public var damage: [Damage] = []
    }

    /// Bytes that did not hold whole records, in the middle of the stream.
    public struct Damage: Equatable, Sendable {
        public var block: String
        public var offset: Int
        public var bytes: Int
        /// The message sequences that were there and are gone (first...last; nil when none were).
        public var lostFirst: UInt64?
        public var lostLast: UInt64?
        public var reason: String
    }

    private typealias Location = SequenceIndex.Location

    fileprivate enum Kind: UInt8 {
        case message = 0
        case delete = 1
        case purge = 2
        /// The next sequence is the record's (a mirror passing over its origin's gap).
        case skip = 3
    }

    /// kind(1) seq(8) ts(8) subjectLength(2) headersLength(4) payloadLength(4)
    private static let fixedHeader = 1 + 8 + 8 + 2 + 4 + 4
    private static let sealedMagic: [UInt8] = Array("BKLZ".utf8)

    public let directory: URL
    public let configuration: Configuration
    public private(set) var recovery = Recovery()

    private let index = SequenceIndex()
    private var current = StoreState()
    private var nextSequence: UInt64 = 1
    private var activeID: UInt32 = 1
    private var activeFD: Int32 = -1
    private var activeSize = 0
    /// Appends not yet handed to the kernel: one pwrite per group commit (or per MiB), not one per message.
    /// Nothing is acknowledged before `sync()`, which writes them first.
    private var buffered: [UInt8] = []
    private var flushedSize = 0
    private var sealed: Set<UInt32> = []
    /// Sealed blocks whose whole-block checksum failed but whose records were read one by one (each has its
    /// own CRC): served from what was read, never trusted as a whole.
    private var salvaged: Set<UInt32> = []
    /// The sealed blocks read last, decompressed, most recent last: two, so that two readers in different
    /// blocks (a limits stream's removals at the front and a consumer behind) do not decompress 8 MiB each
    /// in turn, as one slot made them.
    private var cachedBlocks: [(id: UInt32, bytes: [UInt8])] = []
    private static let cachedBlockCount = 2
    /// Sealed blocks read and decompressed (tests: what the cache spares).
    private(set) var sealedBlockReads = 0
    private var dirty = false
    /// What the last successful sync covered, and what came after it: a failed sync (a full disk, a failing
    /// fsync) takes back exactly what it did not cover (`rollBackUnsynced`).
    private var syncedSize = 0
    private var syncedNextSequence: UInt64 = 1
    private var syncedLastSequence: UInt64 = 0
    private var unsyncedMessages: [(sequence: UInt64, size: UInt64)] = []
    /// Removals since the last sync: after a rollback their delete records are written again (they stand), or
    /// one caused by a publish that the rollback takes back (its limits or rollup) is put back from where the
    /// message still lies.
    private var unsyncedDeletes: [(sequence: UInt64, location: Location, size: UInt64, causedBy: UInt64?)] = []
    /// A seal that failed (no space) is tried again only after this many more bytes.
    private var sealRetrySize = 0
    /// The last sequence of each full block (appends go on in a later one), and the lowest of them: a sealed
    /// block whose sequences all lie below the first message is deleted after the sync that made it so.
    private var blockLast: [UInt32: UInt64] = [:]
    private var lowestBlockLast: UInt64 = .max
    /// Full raw blocks being sealed in the background, with a descriptor they are read through meanwhile.
    private var sealing: [UInt32: Int32] = [:]
    private let sealer = BlockSealer()

    public init(directory: URL, configuration: Configuration = Configuration()) throws(StoreError) {
        self.directory = directory
        self.configuration = configuration
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw .io("cannot create \(directory.path): \(error)")
        }
        try recover()
    }

    deinit {
        sealer.waitForAll()
        if activeFD >= 0 { Glibc.close(activeFD) }
        for fd in sealing.values { Glibc.close(fd) }
    }

    public var state: StoreState { current }

    // MARK: - Appends

    public func append(subject: [UInt8], headers: [UInt8], payload: [UInt8], timestamp: Int64) throws(StoreError) -> UInt64 {
        guard activeFD >= 0 else { throw .closed }
        if sealer.hasFinished { collectSeals() }
        guard subject.count <= Int(UInt16.max), headers.count + payload.count <= configuration.maxMessageSize else {
            throw .messageTooLarge
        }
        let sequence = nextSequence
        // Encoded straight into the write buffer: no record array of its own per message.
        let offset = activeSize
        let length = Self.encode(kind: .message, sequence: sequence, timestamp: timestamp,
                                 subject: subject, headers: headers, payload: payload, into: &buffered)
        wrote(length)
        nextSequence += 1
        index[sequence] = Location(block: activeID, offset: offset, length: length)
        let size = UInt64(subject.count + headers.count + payload.count + 16)
        current.messages += 1
        current.bytes += size
        current.lastSequence = sequence
        if current.messages == 1 { current.firstSequence = sequence }
        unsyncedMessages.append((sequence, size))
        if activeSize >= max(configuration.blockSize, sealRetrySize) {
            do {
                try sealIfFull()
                sealRetrySize = 0
            } catch {
                // The message is appended (its sync decides its PubAck); sealing waits for space.
                sealRetrySize = activeSize + (1 << 20)
            }
        }
        return sequence
    }

    public func contains(_ sequence: UInt64) -> Bool { index[sequence] != nil }

    public func firstStored(atOrAfter sequence: UInt64) -> UInt64? {
        index.first(atOrAfter: max(sequence, current.firstSequence), limit: current.lastSequence)
    }

    public func remove(_ sequence: UInt64, causedBy publish: UInt64?) throws(StoreError) -> Bool {
        guard activeFD >= 0 else { throw .closed }
        guard let location = index[sequence] else { return false }
        let message = try load(sequence)
        _ = try write(Self.marker(.delete, sequence))
        forget(sequence, size: UInt64(message.size))
        unsyncedDeletes.append((sequence, location, UInt64(message.size), publish))
        return true
    }

    public func purge() throws(StoreError) {
        guard activeFD >= 0 else { throw .closed }
        // What came before is on disk first (else the purge is refused and the caller's sync takes it back);
        // then the purge record alone, taken back if its sync fails, before anything leaves memory.
        try sync()
        _ = try write(Self.marker(.purge, nextSequence))
        do {
            try sync()
        } catch {
            _ = rollBackUnsynced()
            throw error
        }
        index.removeAll()
        current.messages = 0
        current.bytes = 0
        current.firstSequence = nextSequence
    }

    public func skip(to sequence: UInt64) throws(StoreError) {
        guard activeFD >= 0 else { throw .closed }
        guard sequence > nextSequence else { return }
        _ = try write(Self.marker(.skip, sequence))
        nextSequence = sequence
        current.lastSequence = sequence - 1
        if current.messages == 0 { current.firstSequence = sequence }
    }

    /// An fsync failed: Linux reports that once, and the pages it covered may be gone, so no later sync may
    /// succeed until `rollBackUnsynced` cut them off.
    private var fsyncFailed = false

    public func sync() throws(StoreError) {
        guard activeFD >= 0 else { throw .closed }
        guard !fsyncFailed else { throw .io("fsync failed earlier: waiting for the rollback") }
        guard dirty else { return }
        try flushWrites()
        guard fsync(activeFD) == 0 else {
            fsyncFailed = true
            throw .io("fsync: \(String(cString: strerror(errno)))")
        }
        dirty = false
        markSynced()
        if current.firstSequence > lowestBlockLast { releaseBlocksBelowFirst() }
    }

    /// Deletes the sealed blocks that hold nothing any more (every sequence in them lies below the first message:
    /// acked work, purged, aged out), after the sync that made those removals durable, so a rollback never needs
    /// them. The active block first gets a record of the next sequence, on disk, so that sequences go on from
    /// there whatever blocks are left. A block still being sealed goes at a later sync.
    private func releaseBlocksBelowFirst() {
        // Only blocks older than every block still raw (being sealed, or kept raw as damaged): a newer block may
        // hold the delete and purge records of an older one's messages, and must outlive it.
        let oldestRaw = sealing.keys.min() ?? .max
        // Nor a block whose raw file's removal is still queued (BlockSealer.discard): its sealed file goes after
        // that, so a crash never leaves the raw file alone, read back as an unsealed block.
        let gone = blockLast.filter {
            $0.value < current.firstSequence && sealed.contains($0.key) && $0.key < oldestRaw && !sealer.isDiscarding($0.key)
        }.map(\.key)
        guard !gone.isEmpty else { return }
        // A write that fails (no space) leaves the record buffered for the next sync and the blocks in place; a
        // failed fsync is never followed by a false success (the next sync fails and the rollback cuts it off).
        guard (try? write(Self.marker(.skip, nextSequence))) != nil, (try? flushWrites()) != nil else { return }
        guard fsync(activeFD) == 0 else {
            fsyncFailed = true
            return
        }
        dirty = false
        markSynced()
        for id in gone {
            unlink(blockURL(id, sealed: true).path)
            sealed.remove(id)
            salvaged.remove(id)
            blockLast[id] = nil
            cachedBlocks.removeAll { $0.id == id }
        }
        SyncedFile.syncDirectory(directory.path)
        lowestBlockLast = blockLast.values.min() ?? .max
    }

    private func markSynced() {
        syncedSize = activeSize
        syncedNextSequence = nextSequence
        syncedLastSequence = current.lastSequence
        unsyncedMessages.removeAll(keepingCapacity: true)
        unsyncedDeletes.removeAll(keepingCapacity: true)
    }

    /// After a failed sync (no space, a failing fsync): takes back every message appended since the last
    /// successful one, which nobody was told is stored, cuts the active block back to what that sync covered
    /// (after a failed fsync the kernel may have dropped those pages: they are never trusted), puts back the
    /// messages that those publishes displaced (their records lie before the cut, or in sealed blocks) and
    /// writes the other removals since then again.
    public func rollBackUnsynced() -> StoreRollback {
        var result = StoreRollback()
        guard activeFD >= 0, dirty || fsyncFailed || !unsyncedMessages.isEmpty else { return result }
        for (sequence, size) in unsyncedMessages.reversed() where index[sequence] != nil {
            if let message = try? load(sequence) { result.taken.append((sequence, message.subject)) }
            forget(sequence, size: size)
        }
        result.taken.reverse()
        let rolledBack = Set(unsyncedMessages.map(\.sequence))
        let removals = unsyncedDeletes.filter { !rolledBack.contains($0.sequence) }
        // Only what a publish taken back displaced returns (one a seal's sync made durable keeps its removals). It
        // lies in the synced part of the active block or in an older block (a message after the last sync is
        // among those taken back): its location holds after the cut.
        let deletes = Set(removals.filter { removal in
            guard let cause = removal.causedBy, rolledBack.contains(cause) else { return true }
            return removal.location.block == activeID && removal.location.offset + removal.location.length > syncedSize
        }.map(\.sequence))
        for removal in removals where !deletes.contains(removal.sequence) {
            index[removal.sequence] = removal.location
            current.messages += 1
            current.bytes += removal.size
            if current.messages == 1 || removal.sequence < current.firstSequence { current.firstSequence = removal.sequence }
            result.restored.append(removal.sequence)
        }
        result.restored.sort()
        buffered.removeAll(keepingCapacity: true)
        fsyncFailed = ftruncate(activeFD, off_t(syncedSize)) != 0  // a block that cannot be cut is never trusted
        activeSize = syncedSize
        flushedSize = syncedSize
        nextSequence = syncedNextSequence
        current.lastSequence = syncedLastSequence
        if current.messages == 0 { current.firstSequence = nextSequence }
        unsyncedMessages.removeAll()
        unsyncedDeletes.removeAll()
        dirty = false
        for removal in removals where deletes.contains(removal.sequence) {
            _ = try? write(Self.marker(.delete, removal.sequence))
            unsyncedDeletes.append((removal.sequence, removal.location, removal.size, nil))
        }
        return result
    }

    public func close() throws(StoreError) {
        guard activeFD >= 0 else { return }
        do {
            try sync()
        } catch {
            // The seals under way finish either way (a deleted stream must not get a sealed block back).
            sealer.waitForAll()
            collectSeals()
            sealer.waitForAll()  // the raw blocks collectSeals discards
            throw error
        }
        sealer.waitForAll()
        collectSeals()
        sealer.waitForAll()  // the raw blocks collectSeals discards
        Glibc.close(activeFD)
        activeFD = -1
    }

    // MARK: - Reads

    public func load(_ sequence: UInt64) throws(StoreError) -> StoredMessage {
        guard let location = index[sequence] else { throw .notFound }
        let record: ArraySlice<UInt8>
        if location.block == activeID && !sealed.contains(location.block) && location.offset >= flushedSize {
            // Still in the write buffer.
            let start = location.offset - flushedSize
            guard start + location.length <= buffered.count else { throw .io("index beyond the write buffer") }
            record = buffered[start..<(start + location.length)]
        } else if let fd = location.block == activeID && !sealed.contains(location.block) ? activeFD : sealing[location.block] {
            // The active block, or a full one still being sealed.
            var bytes = [UInt8](repeating: 0, count: location.length)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, location.length, off_t(location.offset)) }
            guard n == location.length else { throw .io("short read at \(location.offset)") }
            record = bytes[...]
        } else {
            let block = try sealedBlock(location.block)
            guard location.offset + location.length <= block.count else { throw .io("index beyond block") }
            record = block[location.offset..<(location.offset + location.length)]
        }
        guard let (kind, message, _) = Self.decode(record), kind == .message else { throw .io("bad record \(sequence)") }
        return message
    }

    /// Every stored message in sequence order with its time, subject and headers (slices of the block, no
    /// payload copied, no checksum again: recovery checked them): what a stream rebuilds its indexes from.
    public func forEachMessage(_ body: (_ sequence: UInt64, _ timestamp: Int64, _ subject: ArraySlice<UInt8>, _ headers: ArraySlice<UInt8>) -> Void) {
        var blockID: UInt32?
        var bytes: [UInt8] = []
        // A walk of every block (the rebuild at start) leaves no decompressed block behind in the cache: a store
        // at rest holds none.
        let cached = cachedBlocks
        defer { cachedBlocks = cached }
        var next = index.first(atOrAfter: current.firstSequence, limit: current.lastSequence)
        while let sequence = next {
            next = sequence < current.lastSequence ? index.first(atOrAfter: sequence + 1, limit: current.lastSequence) : nil
            guard let location = index[sequence] else { continue }
            if location.block != blockID {
                blockID = location.block
                bytes = blockBytes(location.block) ?? []
            }
            guard location.offset + location.length <= bytes.count, location.length >= 8 + Self.fixedHeader else { continue }
            let record = bytes[location.offset..<(location.offset + location.length)]
            let fields = record[(record.startIndex + 4)..<(record.endIndex - 4)]
            let timestamp = Int64(bitPattern: Self.read(fields, at: 9, as: UInt64.self))
            let subjectLength = Int(Self.read(fields, at: 17, as: UInt16.self))
            let headersLength = Int(Self.read(fields, at: 19, as: UInt32.self))
            let p = fields.startIndex + Self.fixedHeader
            guard p + subjectLength + headersLength <= fields.endIndex else { continue }
            body(sequence, timestamp, fields[p..<(p + subjectLength)], fields[(p + subjectLength)..<(p + subjectLength + headersLength)])
        }
    }

    /// A block's bytes: the active one (file and write buffer), one being sealed, or a sealed one.
    private func blockBytes(_ id: UInt32) -> [UInt8]? {
        func readAll(_ fd: Int32, _ size: Int) -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: size)
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
            return n == size ? out : nil
        }
        if id == activeID, !sealed.contains(id) {
            guard var out = readAll(activeFD, flushedSize) else { return nil }
            out += buffered
            return out
        }
        if let fd = sealing[id] {
            var info = stat()
            fstat(fd, &info)
            return readAll(fd, Int(info.st_size))
        }
        return try? sealedBlock(id)
    }

    // MARK: - Records

    /// A record that carries only a sequence: a delete, a purge or a skip.
    private static func marker(_ kind: Kind, _ sequence: UInt64) -> [UInt8] {
        encode(kind: kind, sequence: sequence, timestamp: 0, subject: [], headers: [], payload: [])
    }

    private static func encode(kind: Kind, sequence: UInt64, timestamp: Int64, subject: [UInt8], headers: [UInt8],
                               payload: [UInt8]) -> [UInt8] {
        var record = [UInt8]()
        record.reserveCapacity(fixedHeader + subject.count + headers.count + payload.count + 8)
        encode(kind: kind, sequence: sequence, timestamp: timestamp, subject: subject, headers: headers, payload: payload,
               into: &record)
        return record
    }

    /// Appends the record to `out`: its length (of what follows), the body, the body's CRC-32C. Returns the
    /// record's length.
    private static func encode(kind: Kind, sequence: UInt64, timestamp: Int64, subject: [UInt8], headers: [UInt8],
                               payload: [UInt8], into out: inout [UInt8]) -> Int {
        let bodyCount = fixedHeader + subject.count + headers.count + payload.count
        append(&out, UInt32(bodyCount + 4))  // length of what follows: body + crc
        let bodyStart = out.count
        out.append(kind.rawValue)
        append(&out, sequence)
        append(&out, UInt64(bitPattern: timestamp))
        append(&out, UInt16(subject.count))
        append(&out, UInt32(headers.count))
        append(&out, UInt32(payload.count))
        out += subject
        out += headers
        out += payload
        let crc = out.withUnsafeBufferPointer { CRC32C.checksum(UnsafeBufferPointer(rebasing: $0[bodyStart...])) }
        append(&out, crc)
        return bodyCount + 8
    }

    /// A message's size (StoredMessage.size: subject, headers, payload and 16) from its record's length.
    private static func messageSize(recordLength: Int) -> UInt64 { UInt64(recordLength - 8 - fixedHeader + 16) }

    private static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func read<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, at offset: Int, as: T.Type) -> T {
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { dst in
            for i in 0..<MemoryLayout<T>.size { dst[i] = bytes[bytes.startIndex + offset + i] }
        }
        return T(littleEndian: value)
    }

    /// Checks one record at the start of `bytes` without copying anything out of it: its kind, sequence and
    /// whole length, or nil when it is incomplete or fails its checksum (recovery reads only this).
    /// `verify: false` skips the record's CRC where the whole block's checksum already held.
    fileprivate static func check(_ bytes: ArraySlice<UInt8>, verify: Bool = true) -> (kind: Kind, sequence: UInt64, length: Int)? {
        guard bytes.count >= 4 else { return nil }
        let length = Int(read(bytes, at: 0, as: UInt32.self))
        guard length >= fixedHeader + 4, bytes.count >= 4 + length else { return nil }
        let body = bytes[(bytes.startIndex + 4)..<(bytes.startIndex + 4 + length - 4)]
        // The cheap checks first (recovery tries many offsets when it looks for the next whole record).
        guard let kind = Kind(rawValue: body[body.startIndex]) else { return nil }
        let subjectLength = Int(read(body, at: 17, as: UInt16.self))
        let headersLength = Int(read(body, at: 19, as: UInt32.self))
        let payloadLength = Int(read(body, at: 23, as: UInt32.self))
        guard fixedHeader + subjectLength + headersLength + payloadLength == body.count else { return nil }
        if verify {
            let crc = read(bytes, at: 4 + length - 4, as: UInt32.self)
            guard CRC32C.checksum(body) == crc else { return nil }
        }
        return (kind, read(body, at: 1, as: UInt64.self), 4 + length)
    }

    /// Decodes one record at the start of `bytes`. Returns nil when it is incomplete or fails its checksum.
    private static func decode(_ bytes: ArraySlice<UInt8>) -> (Kind, StoredMessage, Int)? {
        guard let (kind, sequence, length) = check(bytes) else { return nil }
        let body = bytes[(bytes.startIndex + 4)..<(bytes.startIndex + length - 4)]
        let timestamp = Int64(bitPattern: read(body, at: 9, as: UInt64.self))
        let subjectLength = Int(read(body, at: 17, as: UInt16.self))
        let headersLength = Int(read(body, at: 19, as: UInt32.self))
        let payloadLength = Int(read(body, at: 23, as: UInt32.self))
        var p = body.startIndex + fixedHeader
        let subject = Array(body[p..<(p + subjectLength)]); p += subjectLength
        let headers = Array(body[p..<(p + headersLength)]); p += headersLength
        let payload = Array(body[p..<(p + payloadLength)])
        return (kind, StoredMessage(sequence: sequence, timestamp: timestamp, subject: subject, headers: headers,
                                    payload: payload), length)
    }

    // MARK: - Blocks

    private func blockURL(_ id: UInt32, sealed: Bool) -> URL {
        directory.appendingPathComponent(String(format: "%08u.blk", id) + (sealed ? ".lz4" : ""))
    }

    private func write(_ record: [UInt8]) throws(StoreError) -> Int {
        let offset = activeSize
        buffered.append(contentsOf: record)
        wrote(record.count)
        return offset
    }

    /// A record of `length` bytes was appended to `buffered`.
    private func wrote(_ length: Int) {
        activeSize += length
        dirty = true
        // A failure here stays in the buffer and surfaces at the next sync, before any ack: the record is
        // kept (its sequence is taken), never half-written.
        if buffered.count >= 1 << 20 { try? flushWrites() }
    }

    /// Hands the buffered appends to the kernel (not to the disk: that is `sync()`).
    public func flushWrites() throws(StoreError) {
        guard !buffered.isEmpty else { return }
        var done = 0
        while done < buffered.count {
            let n = buffered.withUnsafeBytes { pwrite(activeFD, $0.baseAddress! + done, buffered.count - done, off_t(flushedSize + done)) }
            guard n > 0 else { throw .io("write: \(String(cString: strerror(errno)))") }
            done += n
        }
        flushedSize += buffered.count
        buffered.removeAll(keepingCapacity: true)
    }

    private func openActive(_ id: UInt32) throws(StoreError) {
        let path = blockURL(id, sealed: false).path
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw .io("open \(path): \(String(cString: strerror(errno)))") }
        activeFD = fd
        activeID = id
        var info = stat()
        fstat(fd, &info)
        activeSize = Int(info.st_size)
        flushedSize = activeSize
        buffered.removeAll(keepingCapacity: true)
        markSynced()
        if activeSize == 0 { SyncedFile.syncDirectory(directory.path) }  // the new block's name survives a crash
    }

    /// Once the active block is full: fsync it, start the next block, and hand the full one to the background
    /// sealer (compress, write + fsync + rename the sealed file); it is read through its raw file until then.
    /// A crash at any point leaves either the raw or the sealed block intact (recovery seals leftovers again).
    private func sealIfFull() throws(StoreError) {
        guard activeSize >= configuration.blockSize else { return }
        try sync()
        let id = activeID
        let fd = activeFD
        activeFD = -1  // never write through a descriptor that now belongs to the sealer's reads
        do {
            try openActive(id + 1)
        } catch {
            activeFD = fd
            activeID = id
            throw error
        }
        blockLast[id] = nextSequence - 1
        lowestBlockLast = min(lowestBlockLast, nextSequence - 1)
        sealing[id] = fd
        sealer.seal(id: id, raw: blockURL(id, sealed: false), sealed: blockURL(id, sealed: true))
        // The new block starts with the next sequence, on disk now: were the block just sealed lost later (damage),
        // an empty active block still says where sequences go on, and none is ever used twice.
        _ = try? write(Self.marker(.skip, nextSequence))
        try? sync()
    }

    /// Takes the seals the background finished: the sealed file is in place, so the raw one goes. A seal that
    /// failed (no space) keeps its raw block, read as before, and is tried again a second later.
    private func collectSeals() {
        for (id, result) in sealer.finished() {
            guard let fd = sealing[id] else { continue }
            switch result {
            case .success:
                sealing[id] = nil
                sealed.insert(id)
                // Freeing a raw block's 8 MiB took 5-6 ms of the JetStream queue (strace -T: unlink, or the close
                // after it), the tail of the publish latency: done in the background, after which nothing reads
                // the raw file. A crash before it leaves the raw block beside its sealed one: start-up removes it.
                sealer.discard(id: id, fd: fd, path: blockURL(id, sealed: false).path)
            case .failure(.damaged):
                break  // kept raw for good: read through its file, record by record
            case .failure:
                sealer.seal(id: id, raw: blockURL(id, sealed: false), sealed: blockURL(id, sealed: true),
                            after: .seconds(1))
            }
        }
    }

    /// A whole file read straight into an array (no Data in between, no zeroing first); nil when unreadable.
    static func readWholeFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        var complete = true
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let n = pread(fd, buffer.baseAddress! + done, size - done, off_t(done))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                done += n
            }
            complete = done == size
            count = done
        }
        return complete ? bytes : nil
    }

    private func sealedBlock(_ id: UInt32) throws(StoreError) -> [UInt8] {
        if let i = cachedBlocks.lastIndex(where: { $0.id == id }) {
            if i != cachedBlocks.count - 1 { cachedBlocks.append(cachedBlocks.remove(at: i)) }
            return cachedBlocks[cachedBlocks.count - 1].bytes
        }
        guard let bytes = Self.readWholeFile(blockURL(id, sealed: true).path) else {
            throw .io("missing sealed block \(id)")
        }
        sealedBlockReads += 1
        guard bytes.count >= 12, Array(bytes[0..<4]) == Self.sealedMagic else { throw .io("bad sealed block \(id)") }
        let rawSize = Int(Self.read(bytes[...], at: 4, as: UInt32.self))
        let crc = Self.read(bytes[...], at: 8, as: UInt32.self)
        let raw: [UInt8]
        do { raw = try LZ4.decompress(bytes[12...], originalSize: rawSize) } catch { throw .io("sealed block \(id): \(error)") }
        guard CRC32C.checksum(raw) == crc || salvaged.contains(id) else { throw .io("sealed block \(id): checksum mismatch") }
        if cachedBlocks.count >= Self.cachedBlockCount { cachedBlocks.removeFirst() }
        cachedBlocks.append((id, raw))
        return raw
    }

    private enum SealedRead {
        case whole([UInt8])
        case checksumMismatch([UInt8])
        case unreadable(String, size: Int)
    }

    /// A sealed block at start-up: whole, readable but failing its block checksum, or not readable at all.
    private func readSealedForRecovery(_ id: UInt32) -> SealedRead {
        guard let bytes = Self.readWholeFile(blockURL(id, sealed: true).path) else { return .unreadable("cannot read", size: 0) }
        guard bytes.count >= 12, Array(bytes[0..<4]) == Self.sealedMagic else { return .unreadable("no block header", size: bytes.count) }
        let rawSize = Int(Self.read(bytes[...], at: 4, as: UInt32.self))
        let crc = Self.read(bytes[...], at: 8, as: UInt32.self)
        guard let raw = try? LZ4.decompress(bytes[12...], originalSize: rawSize) else { return .unreadable("does not decompress", size: bytes.count) }
        return CRC32C.checksum(raw) == crc ? .whole(raw) : .checksumMismatch(raw)
    }

    /// Where the next whole record after `offset` starts (nil: none, the rest is a torn tail). The damaged
    /// record's own length is tried first (a flipped bit in its body), then every later offset.
    private static func nextWholeRecord(in bytes: [UInt8], after offset: Int) -> Int? {
        let minimum = 4 + fixedHeader + 4
        if offset + 4 <= bytes.count {
            let skip = offset + 4 + Int(read(bytes[...], at: offset, as: UInt32.self))
            if skip > offset, skip + minimum <= bytes.count, check(bytes[skip...]) != nil { return skip }
        }
        var p = offset + 1
        while p + minimum <= bytes.count {
            if check(bytes[p...]) != nil { return p }
            p += 1
        }
        return nil
    }

    // MARK: - Recovery

    private func forget(_ sequence: UInt64, size: UInt64) {
        index[sequence] = nil
        current.messages -= 1
        current.bytes -= size
        if sequence == current.firstSequence {
            if current.messages == 0 {
                current.firstSequence = current.lastSequence + 1
            } else {
                current.firstSequence = index.first(atOrAfter: sequence + 1, limit: current.lastSequence) ?? current.lastSequence + 1
            }
        }
    }

    /// Rebuilds the index from the blocks and cuts a torn tail off the active block.
    private func recover() throws(StoreError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var ids: [(UInt32, Bool)] = []
        for name in names {
            if name.hasSuffix(".tmp") {
                unlink(directory.appendingPathComponent(name).path)  // an interrupted seal: the raw block remains
                continue
            }
            let sealedFile = name.hasSuffix(".blk.lz4")
            guard sealedFile || name.hasSuffix(".blk"), let id = UInt32(name.prefix(8)) else { continue }
            ids.append((id, sealedFile))
        }
        // If a block exists both sealed and raw (crash after rename, before unlink), the sealed one wins.
        let sealedIDs = Set(ids.filter { $0.1 }.map(\.0))
        for (id, isSealed) in ids where !isSealed && sealedIDs.contains(id) {
            unlink(blockURL(id, sealed: false).path)
        }
        let rawIDs = ids.filter { !$0.1 && !sealedIDs.contains($0.0) }.map(\.0).sorted()
        let all = (Array(sealedIDs) + rawIDs).sorted()
        recovery.blocks = all.count
        // The newest message sequence read so far, and the damage whose lost range ends at the next message.
        var lastMessage: UInt64 = 0
        var openDamage: [Int] = []
        func noteDamage(_ block: String, _ offset: Int, _ bytes: Int, _ reason: String) {
            recovery.damage.append(Damage(block: block, offset: offset, bytes: bytes, lostFirst: nil, lostLast: nil, reason: reason))
            openDamage.append(recovery.damage.count - 1)
        }
        for id in all {
            let isSealed = sealedIDs.contains(id)
            let name = blockURL(id, sealed: isSealed).lastPathComponent
            let bytes: [UInt8]
            // A sealed block whose checksum held needs no record-by-record check.
            var verify = true
            if isSealed {
                sealed.insert(id)
                switch readSealedForRecovery(id) {
                case .whole(let raw):
                    bytes = raw
                    verify = false
                case .checksumMismatch(let raw):
                    // Read record by record: each carries its own CRC, so only the damaged ones are lost.
                    salvaged.insert(id)
                    cachedBlocks.removeAll()
                    bytes = raw
                case .unreadable(let why, let size):
                    noteDamage(name, 0, size, "unreadable sealed block (\(why)): all its messages")
                    continue
                }
            } else {
                bytes = Self.readWholeFile(blockURL(id, sealed: false).path) ?? []
            }
            var offset = 0
            while offset < bytes.count {
                guard let (kind, sequence, length) = Self.check(bytes[offset...], verify: verify) else {
                    // Not a whole record: damage in the middle when a whole record follows, else a torn tail.
                    guard let next = Self.nextWholeRecord(in: bytes, after: offset) else { break }
                    noteDamage(name, offset, next - offset, "bytes that are not whole records (a flipped bit or a torn write)")
                    offset = next
                    continue
                }
                switch kind {
                case .message:
                    for i in openDamage where sequence > lastMessage + 1 {
                        recovery.damage[i].lostFirst = lastMessage + 1
                        recovery.damage[i].lostLast = sequence - 1
                    }
                    openDamage.removeAll()
                    lastMessage = max(lastMessage, sequence)
                    index[sequence] = Location(block: id, offset: offset, length: length)
                    current.messages += 1
                    current.bytes += Self.messageSize(recordLength: length)
                    current.lastSequence = max(current.lastSequence, sequence)
                    nextSequence = max(nextSequence, sequence + 1)
                case .delete:
                    if let location = index[sequence] {
                        index[sequence] = nil
                        current.messages -= 1
                        current.bytes -= Self.messageSize(recordLength: location.length)
                    }
                case .purge:
                    index.removeAll()
                    current.messages = 0
                    current.bytes = 0
                    nextSequence = max(nextSequence, sequence)
                    current.lastSequence = max(current.lastSequence, sequence - 1)
                    lastMessage = max(lastMessage, sequence - 1)
                case .skip:
                    // A block starts with one: what damage before it took ends here.
                    for i in openDamage where sequence > lastMessage + 1 {
                        recovery.damage[i].lostFirst = lastMessage + 1
                        recovery.damage[i].lostLast = sequence - 1
                    }
                    openDamage.removeAll()
                    nextSequence = max(nextSequence, sequence)
                    current.lastSequence = max(current.lastSequence, sequence - 1)
                    lastMessage = max(lastMessage, sequence - 1)
                }
                offset += length
            }
            if id != all.last || isSealed { blockLast[id] = lastMessage }  // an upper bound of its sequences
            if offset < bytes.count {
                if isSealed {
                    noteDamage(name, offset, bytes.count - offset, "the end of a sealed block is not whole records")
                    continue
                }
                // A torn or corrupt tail: cut it, so nothing after the last good record is ever served.
                recovery.truncatedBytes += bytes.count - offset
                recovery.truncatedAt = offset
                recovery.truncatedBlock = blockURL(id, sealed: false).lastPathComponent
                truncate(blockURL(id, sealed: false).path, off_t(offset))
            }
        }
        recovery.messages = index.count
        lowestBlockLast = blockLast.values.min() ?? .max
        current.firstSequence = index.first ?? nextSequence
        if current.lastSequence == 0 && nextSequence > 1 { current.lastSequence = nextSequence - 1 }
        // Full raw blocks a crash left unsealed (all but the last raw one): read through their file, sealed again.
        for id in rawIDs.dropLast() {
            let fd = open(blockURL(id, sealed: false).path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            sealing[id] = fd
            sealer.seal(id: id, raw: blockURL(id, sealed: false), sealed: blockURL(id, sealed: true))
        }
        try openActive(rawIDs.last ?? ((all.last ?? 0) + 1))
        if activeFD >= 0 { _ = fsync(activeFD) }
    }
}

/// Seals full blocks off the stream's queue: reads the raw block, compresses it with LZ4 and writes
/// `<id>.blk.lz4` (temporary file, fsync, rename, directory fsync). The store collects the results on its own
/// thread (`finished`); `hasFinished` is one atomic load, so appends do not lock for it.
final class BlockSealer: @unchecked Sendable {
    private static let queue = DispatchQueue(label: "brokerd.filestore.seal", qos: .utility)
    private let results = Mutex<[(UInt32, Result<Void, StoreError>)]>([])
    private let ready = Atomic<Bool>(false)
    private let group = DispatchGroup()

    var hasFinished: Bool { ready.load(ordering: .acquiring) }

    func seal(id: UInt32, raw: URL, sealed: URL, after delay: DispatchTimeInterval? = nil) {
        group.enter()
        let work: @Sendable () -> Void = { [self] in
            let result = Self.writeSealed(raw: raw, sealed: sealed)
            results.withLock { $0.append((id, result)) }
            ready.store(true, ordering: .releasing)
            group.leave()
        }
        if let delay { Self.queue.asyncAfter(deadline: .now() + delay, execute: work) } else { Self.queue.async(execute: work) }
    }

    func finished() -> [(UInt32, Result<Void, StoreError>)] {
        ready.store(false, ordering: .releasing)
        return results.withLock { r in
            defer { r.removeAll() }
            return r
        }
    }

    func waitForAll() { group.wait() }

    /// Closes a sealed block's raw file and removes it, on the sealer's queue.
    func discard(id: UInt32, fd: Int32, path: String) {
        group.enter()
        discarding.withLock { _ = $0.insert(id) }
        Self.queue.async { [self] in
            Glibc.close(fd)
            unlink(path)
            discarding.withLock { _ = $0.remove(id) }
            group.leave()
        }
    }

    /// Blocks whose raw file `discard` has not removed yet.
    private let discarding = Mutex<Set<UInt32>>([])

    func isDiscarding(_ id: UInt32) -> Bool { discarding.withLock { $0.contains(id) } }

    private static func writeSealed(raw rawURL: URL, sealed final: URL) -> Result<Void, StoreError> {
        guard let raw = FileStore.readWholeFile(rawURL.path) else { return .failure(.io("cannot read \(rawURL.lastPathComponent)")) }
        // Never seal over damage: the block's checksum would vouch for it. A block with a record that fails its
        // own CRC stays raw (read record by record, damaged ones never served).
        var offset = 0
        while offset < raw.count {
            guard let record = FileStore.check(raw[offset...]) else { return .failure(.damaged) }
            offset += record.length
        }
        // "BKLZ", the raw size and its CRC-32C, then the LZ4 bytes (compressed straight after the header room).
        var file: [UInt8]
        do { file = try LZ4.compress(raw, reserving: 12) } catch { return .failure(.io("lz4: \(error)")) }
        file.withUnsafeMutableBytes { header in
            header.copyBytes(from: "BKLZ".utf8)
            header.storeBytes(of: UInt32(raw.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            header.storeBytes(of: CRC32C.checksum(raw).littleEndian, toByteOffset: 8, as: UInt32.self)
        }
        do {
            try SyncedFile.replace(file, at: final.path, newDirectory: false)
        } catch {
            unlink(final.path + ".tmp")
            return .failure(error)
        }
        return .success(())
    }
}
