import Foundation
import XCTest

@testable import Broker

/// Every store behaviour runs against both stores; durability and recovery run against the file store.
final class MessageStoreTests: XCTestCase {
    private var directories: [URL] = []

    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(at: d) }
    }

    private func temporaryDirectory() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        directories.append(d)
        return d
    }

    private func makeStores(blockSize: Int = 8 * 1024 * 1024) throws -> [(String, any MessageStore)] {
        var config = FileStore.Configuration()
        config.blockSize = blockSize
        return [("memory", MemoryStore()), ("file", try FileStore(directory: temporaryDirectory(), configuration: config))]
    }

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testAppendLoadAndState() throws {
        for (name, store) in try makeStores() {
            let s1 = try store.append(subject: bytes("FALCO.Critical"), headers: [], payload: bytes("a"), timestamp: 1)
            let s2 = try store.append(subject: bytes("FALCO.Notice"), headers: bytes("NATS/1.0\r\nX: y\r\n\r\n"),
                                      payload: bytes("bb"), timestamp: 2)
            XCTAssertEqual([s1, s2], [1, 2], name)
            let m = try store.load(2)
            XCTAssertEqual(m.subject, bytes("FALCO.Notice"), name)
            XCTAssertEqual(m.headers, bytes("NATS/1.0\r\nX: y\r\n\r\n"), name)
            XCTAssertEqual(m.payload, bytes("bb"), name)
            XCTAssertEqual(m.timestamp, 2, name)
            let expectedBytes: UInt64 = (14 + 0 + 1 + 16) + (12 + 18 + 2 + 16)  // subject + headers + payload + 16, each
            XCTAssertEqual(store.state, StoreState(messages: 2, bytes: expectedBytes, firstSequence: 1, lastSequence: 2), name)
            XCTAssertThrowsError(try store.load(3), name) { XCTAssertEqual($0 as? StoreError, .notFound) }
        }
    }

    func testRemoveAndPurgeKeepSequencesGoing() throws {
        for (name, store) in try makeStores() {
            for i in 0..<5 { _ = try store.append(subject: bytes("s"), headers: [], payload: bytes("\(i)"), timestamp: 0) }
            XCTAssertTrue(try store.remove(1), name)
            XCTAssertFalse(try store.remove(1), name)
            XCTAssertTrue(try store.remove(3), name)
            XCTAssertEqual(store.state.messages, 3, name)
            XCTAssertEqual(store.state.firstSequence, 2, name)
            XCTAssertThrowsError(try store.load(3), name)
            try store.purge()
            XCTAssertEqual(store.state.messages, 0, name)
            XCTAssertEqual(store.state.bytes, 0, name)
            XCTAssertEqual(try store.append(subject: bytes("s"), headers: [], payload: [], timestamp: 0), 6, name)
            XCTAssertEqual(store.state.firstSequence, 6, name)
        }
    }

    /// forEachMessage: every stored message in order with its time, subject and headers, removed ones passed
    /// over, across sealed, sealing and active blocks.
    func testForEachMessageWalksWhatIsStored() throws {
        for (name, store) in try makeStores(blockSize: 2048) {
            for i in 1...200 {
                _ = try store.append(subject: bytes("s.\(i % 3)"), headers: i % 2 == 0 ? bytes("NATS/1.0\r\nX: \(i)\r\n\r\n") : [],
                                     payload: bytes("p\(i)"), timestamp: Int64(i))
            }
            for s: UInt64 in [1, 50, 51, 199] { XCTAssertTrue(try store.remove(s), name) }
            var seen: [(UInt64, Int64, String, String)] = []
            store.forEachMessage { seq, ts, subject, headers in
                seen.append((seq, ts, String(decoding: subject, as: UTF8.self), String(decoding: headers, as: UTF8.self)))
            }
            XCTAssertEqual(seen.count, 196, name)
            XCTAssertEqual(seen.map(\.0), (1...200).map(UInt64.init).filter { ![1, 50, 51, 199].contains($0) }, name)
            XCTAssertTrue(seen.allSatisfy { $0.1 == Int64($0.0) && $0.2 == "s.\($0.0 % 3)" }, name)
            XCTAssertEqual(seen.first { $0.0 == 100 }?.3, "NATS/1.0\r\nX: 100\r\n\r\n", name)
            XCTAssertEqual(seen.first { $0.0 == 101 }?.3, "", name)
        }
    }

    func testFileStoreSurvivesReopen() throws {
        let dir = temporaryDirectory()
        do {
            let store = try FileStore(directory: dir)
            for i in 1...100 { _ = try store.append(subject: bytes("FALCO.Error"), headers: [], payload: bytes("alert \(i)"), timestamp: Int64(i)) }
            _ = try store.remove(10)
            try store.sync()
            try store.close()
        }
        let reopened = try FileStore(directory: dir)
        XCTAssertEqual(reopened.state.messages, 99)
        XCTAssertEqual(reopened.state.lastSequence, 100)
        XCTAssertEqual(try reopened.load(100).payload, bytes("alert 100"))
        XCTAssertThrowsError(try reopened.load(10))
        XCTAssertEqual(try reopened.append(subject: bytes("x"), headers: [], payload: [], timestamp: 0), 101)
    }

    /// A mirror's skip over its origin's gap is a record: after a restart the sequences continue past it.
    func testSkipSurvivesReopen() throws {
        let dir = temporaryDirectory()
        do {
            let store = try FileStore(directory: dir)
            try store.skip(to: 4)
            XCTAssertEqual(try store.append(subject: bytes("a"), headers: [], payload: [], timestamp: 1), 4)
            try store.skip(to: 9)
            try store.sync()
            try store.close()
        }
        let reopened = try FileStore(directory: dir)
        XCTAssertEqual(reopened.state, StoreState(messages: 1, bytes: 17, firstSequence: 4, lastSequence: 8))
        XCTAssertEqual(try reopened.append(subject: bytes("a"), headers: [], payload: [], timestamp: 1), 9)
    }

    func testSealedBlocksAreCompressedAndReadable() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 64 * 1024
        let alert = bytes(#"{"output":"12:00:00.000000000: Critical Terminal shell in container (user=root container_id=4f2a9c shell=bash)","priority":"Critical","rule":"Terminal shell in container","source":"syscall","hostname":"node-1"}"#)
        var rawBytes = 0
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for i in 0..<3000 {
                _ = try store.append(subject: bytes("FALCO.Critical"), headers: [], payload: alert + bytes("\(i)"), timestamp: Int64(i))
                rawBytes += alert.count + 16
            }
            try store.close()
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertGreaterThan(files.filter { $0.hasSuffix(".blk.lz4") }.count, 3, "full blocks are sealed")
        let onDisk = try files.reduce(0) { $0 + ((try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($1).path)[.size] as? Int) ?? 0) }
        XCTAssertLessThan(onDisk, rawBytes / 2, "LZ4 shrinks repetitive alerts")
        let store = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(store.state.messages, 3000)
        XCTAssertEqual(try store.load(1).payload, alert + bytes("0"))
        XCTAssertEqual(try store.load(1500).payload, alert + bytes("1499"))
        XCTAssertEqual(try store.load(3000).payload, alert + bytes("2999"))
    }

    /// Two readers in two sealed blocks, taking turns (a limits stream's removals at the front, a consumer
    /// behind): each block is decompressed once, not at every turn; a third block evicts the least recent.
    func testTwoSealedBlocksReadInTurnsAreDecompressedOnce() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 16 * 1024
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for i in 0..<2000 {
                _ = try store.append(subject: bytes("t.x"), headers: [], payload: bytes(String(repeating: "m\(i) ", count: 20)), timestamp: Int64(i))
            }
            try store.close()
        }
        let store = try FileStore(directory: dir, configuration: config)
        // Messages 1 and 1000 lie in different sealed blocks (records of ~150 B, blocks of 16 KiB).
        for _ in 0..<50 {
            XCTAssertEqual(try store.load(1).payload, bytes(String(repeating: "m0 ", count: 20)))
            XCTAssertEqual(try store.load(1000).payload, bytes(String(repeating: "m999 ", count: 20)))
        }
        XCTAssertEqual(store.sealedBlockReads, 2)
        _ = try store.load(1500)  // a third block: the least recently read (1's) leaves
        _ = try store.load(1000)
        XCTAssertEqual(store.sealedBlockReads, 3)
        _ = try store.load(1)
        XCTAssertEqual(store.sealedBlockReads, 4)
    }

    /// Sealing runs in the background: messages of a block being sealed are read from its raw file meanwhile;
    /// a full raw block a crash left unsealed is read at start and sealed again.
    func testBlocksSealInTheBackgroundAndLeftoversAreSealedAtStart() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 4 * 1024
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for i in 1...300 {
                _ = try store.append(subject: bytes("b"), headers: [], payload: bytes("payload-\(i)"), timestamp: 0)
                // Every message readable at once, whatever its block's sealing is doing.
                XCTAssertEqual(try store.load(UInt64(i)).payload, bytes("payload-\(i)"))
            }
            for s in stride(from: 1, through: 300, by: 7) { XCTAssertEqual(try store.load(UInt64(s)).payload, bytes("payload-\(s)")) }
            try store.close()
        }
        var files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertFalse(files.contains("00000001.blk"), "sealed, then the raw block went")
        // A crash before block 1's seal was in place: its raw file is back, its sealed one gone.
        let sealedURL = dir.appendingPathComponent("00000001.blk.lz4")
        let sealedBytes = [UInt8](try Data(contentsOf: sealedURL))
        let rawSize = Int(sealedBytes[4]) | Int(sealedBytes[5]) << 8 | Int(sealedBytes[6]) << 16 | Int(sealedBytes[7]) << 24
        let raw = try LZ4.decompress(sealedBytes[12...], originalSize: rawSize)
        try Data(raw).write(to: dir.appendingPathComponent("00000001.blk"))
        try FileManager.default.removeItem(at: sealedURL)
        let store = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(store.state.messages, 300)
        XCTAssertEqual(try store.load(2).payload, bytes("payload-2"))
        XCTAssertEqual(try store.append(subject: bytes("b"), headers: [], payload: bytes("after"), timestamp: 0), 301)
        try store.close()
        files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertTrue(files.contains("00000001.blk.lz4"))
        XCTAssertFalse(files.contains("00000001.blk"))
        XCTAssertEqual(try FileStore(directory: dir, configuration: config).load(2).payload, bytes("payload-2"))
    }

    /// Truncate the active block at every offset inside its last records: the store opens, serves only intact
    /// records, says what it cut, and appends after them.
    func testTornTailIsCut() throws {
        let dir = temporaryDirectory()
        do {
            let store = try FileStore(directory: dir)
            for i in 1...20 { _ = try store.append(subject: bytes("t"), headers: [], payload: bytes("payload-\(i)"), timestamp: 0) }
            try store.close()
        }
        let block = dir.appendingPathComponent("00000001.blk")
        let original = try Data(contentsOf: block)
        var rng = SplitMix64(seed: 42)
        for _ in 0..<25 {
            let cut = Int(rng.next() % UInt64(original.count))
            try original.prefix(cut).write(to: block)
            let store = try FileStore(directory: dir)
            let intact = store.state.messages
            XCTAssertLessThanOrEqual(intact, 20)
            for s in 1...UInt64(max(intact, 1)) where intact > 0 {
                XCTAssertEqual(try store.load(s).payload, bytes("payload-\(s)"))
            }
            if store.recovery.truncatedBytes > 0 { XCTAssertNotNil(store.recovery.truncatedAt) }
            XCTAssertEqual(try store.append(subject: bytes("t"), headers: [], payload: bytes("after"), timestamp: 0), intact + 1)
            try store.close()
            try original.write(to: block)
        }
    }

    func testCorruptRecordIsNeverServed() throws {
        let dir = temporaryDirectory()
        do {
            let store = try FileStore(directory: dir)
            for i in 1...10 { _ = try store.append(subject: bytes("c"), headers: [], payload: bytes("p\(i)"), timestamp: 0) }
            try store.close()
        }
        let block = dir.appendingPathComponent("00000001.blk")
        var data = try Data(contentsOf: block)
        data[data.count - 6] ^= 0xFF  // a byte inside the last record's payload
        try data.write(to: block)
        let store = try FileStore(directory: dir)
        XCTAssertEqual(store.state.messages, 9)
        XCTAssertThrowsError(try store.load(10))
        XCTAssertGreaterThan(store.recovery.truncatedBytes, 0)
        XCTAssertEqual(store.recovery.truncatedBlock, "00000001.blk")
    }

    /// A flipped bit in the middle of the active block costs that record only: the store opens, serves every
    /// other message, reports what was lost, and appends after the newest.
    func testDamageInTheMiddleIsPassedOver() throws {
        let dir = temporaryDirectory()
        var offsets: [Int] = []
        do {
            let store = try FileStore(directory: dir)
            for i in 1...20 {
                _ = try store.append(subject: bytes("m"), headers: [], payload: bytes("payload-\(i)"), timestamp: 0)
                try store.sync()
                offsets.append((try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("00000001.blk").path)[.size] as? Int) ?? 0)
            }
            try store.close()
        }
        let block = dir.appendingPathComponent("00000001.blk")
        var data = try Data(contentsOf: block)
        data[offsets[9] - 6] ^= 0x04  // inside message 10's payload
        try data.write(to: block)
        do {
            let store = try FileStore(directory: dir)
            XCTAssertEqual(store.state.messages, 19)
            XCTAssertThrowsError(try store.load(10))
            for s: UInt64 in [1, 9, 11, 20] { XCTAssertEqual(try store.load(s).payload, bytes("payload-\(s)")) }
            XCTAssertEqual(store.recovery.truncatedBytes, 0, "nothing is cut: whole records follow")
            XCTAssertEqual(store.recovery.damage.count, 1)
            XCTAssertEqual(store.recovery.damage.first?.lostFirst, 10)
            XCTAssertEqual(store.recovery.damage.first?.lostLast, 10)
            XCTAssertEqual(try store.append(subject: bytes("m"), headers: [], payload: bytes("after"), timestamp: 0), 21)
            try store.close()
        }
        // A length field destroyed too: found again by scanning for the next whole record.
        data = try Data(contentsOf: block)
        for i in offsets[3]..<(offsets[3] + 4) { data[i] = 0xEE }  // message 5's length
        try data.write(to: block)
        let store = try FileStore(directory: dir)
        XCTAssertEqual(store.state.messages, 19)
        XCTAssertThrowsError(try store.load(5))
        XCTAssertEqual(try store.load(21).payload, bytes("after"))
        XCTAssertEqual(store.recovery.damage.map(\.lostFirst), [5, 10])
    }

    /// A sealed block that fails its checksum is read record by record; one cut short or unreadable is lost
    /// whole, with its sequences reported; every other block is served.
    func testDamagedSealedBlocks() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 4 * 1024
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for i in 1...400 { _ = try store.append(subject: bytes("s"), headers: [], payload: bytes("payload-\(i)-" + String(repeating: "x", count: i % 50)), timestamp: 0) }
            try store.close()
        }
        let sealed = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".blk.lz4") }.sorted()
        XCTAssertGreaterThan(sealed.count, 4)
        // The second sealed block cut in half.
        let second = dir.appendingPathComponent(sealed[1])
        let secondData = try Data(contentsOf: second)
        try secondData.prefix(secondData.count / 2).write(to: second)
        let store = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(store.recovery.damage.count, 1)
        let damage = try XCTUnwrap(store.recovery.damage.first)
        XCTAssertEqual(damage.block, sealed[1])
        let lost = try XCTUnwrap(damage.lostFirst)...(try XCTUnwrap(damage.lostLast))
        XCTAssertGreaterThan(lost.count, 0)
        XCTAssertEqual(store.state.messages, UInt64(400 - lost.count))
        for s in [UInt64(1), lost.lowerBound - 1, lost.upperBound + 1, 400] {
            XCTAssertEqual(String(decoding: try store.load(s).payload, as: UTF8.self).split(separator: "-")[1], "\(s)")
        }
        XCTAssertThrowsError(try store.load(lost.lowerBound))
        XCTAssertEqual(try store.append(subject: bytes("s"), headers: [], payload: bytes("after"), timestamp: 0), 401)
    }

    /// Sealed blocks that hold nothing any more (acked, purged) are deleted after the sync that made it so; the
    /// store reopens with the same state and sequences go on where they were.
    func testEmptiedBlocksAreDeleted() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 4 * 1024
        func blocks() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.contains(".blk") }.sorted()
        }
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for i in 1...400 { _ = try store.append(subject: bytes("s"), headers: [], payload: bytes("payload-\(i)-" + String(repeating: "x", count: 60)), timestamp: 0) }
            try store.sync()
            try store.close()  // the seals under way finish
        }
        let before = blocks()
        XCTAssertGreaterThan(before.count, 5)
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for s: UInt64 in 1...300 { XCTAssertTrue(try store.remove(s)) }
            try store.sync()
            let after = blocks()
            XCTAssertLessThan(after.count, before.count, "blocks below the first message are gone")
            XCTAssertTrue(after.contains(before.last!))
            for s: UInt64 in 301...400 { XCTAssertEqual(String(decoding: try store.load(s).payload, as: UTF8.self).split(separator: "-")[1], "\(s)") }
            try store.close()
        }
        do {
            let store = try FileStore(directory: dir, configuration: config)
            XCTAssertEqual(store.state.messages, 100)
            XCTAssertEqual(store.state.firstSequence, 301)
            XCTAssertTrue(store.recovery.damage.isEmpty)
            try store.purge()
            _ = try store.append(subject: bytes("s"), headers: [], payload: bytes("x"), timestamp: 0)
            try store.sync()
            try store.close()
        }
        XCTAssertLessThanOrEqual(blocks().count, 2, "after a purge only the active block (and one being sealed) is left")
        let store = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(store.state.messages, 1)
        XCTAssertEqual(store.state.firstSequence, 401)
        XCTAssertEqual(try store.append(subject: bytes("s"), headers: [], payload: bytes("y"), timestamp: 0), 402)
    }

    /// The newest sealed block lost while the active block holds no message: the sequences it held are never
    /// used again (each new block starts with a record of the next sequence).
    func testLosingTheNewestSealedBlockReusesNoSequence() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 4 * 1024
        var last: UInt64 = 0
        do {
            let store = try FileStore(directory: dir, configuration: config)
            // Up to the append that fills the first block: it is sealed and the next block is empty.
            repeat {
                last = try store.append(subject: bytes("s"), headers: [], payload: bytes(String(repeating: "y", count: 100)), timestamp: 0)
            } while FileManager.default.fileExists(atPath: dir.appendingPathComponent("00000002.blk").path) == false
            try store.close()
        }
        let sealed = dir.appendingPathComponent("00000001.blk.lz4")
        XCTAssertTrue(FileManager.default.fileExists(atPath: sealed.path))
        try Data("BKLZ garbage".utf8).write(to: sealed)
        let store = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(store.state.messages, 0)
        XCTAssertEqual(store.recovery.damage.count, 1)
        XCTAssertEqual(store.recovery.damage.first?.lostFirst, 1)
        XCTAssertEqual(store.recovery.damage.first?.lostLast, last)
        XCTAssertEqual(try store.append(subject: bytes("s"), headers: [], payload: bytes("after"), timestamp: 0), last + 1)
    }

    /// Runs `body` with files limited to `bytes` (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail with EFBIG,
    /// as on a full disk), then lifts the limit.
    static func underFileSizeLimit(_ bytes: Int, _ body: () throws -> Void) rethrows {
        let previous = signal(SIGXFSZ, SIG_IGN)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        var small = limit
        small.rlim_cur = rlim_t(bytes)
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &small)
        defer {
            setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
            signal(SIGXFSZ, previous)
        }
        try body()
    }

    /// A sync that fails (here: RLIMIT_FSIZE, as a full disk) takes back exactly what it did not cover; removals
    /// made meanwhile stand; once writes succeed again the store goes on from there, also after a reopen.
    func testAFailedSyncIsTakenBack() throws {
        let dir = temporaryDirectory()
        let store = try FileStore(directory: dir)
        for i in 1...10 { _ = try store.append(subject: bytes("r.\(i % 2)"), headers: [], payload: bytes("keep-\(i)"), timestamp: 0) }
        try store.sync()
        let size = (try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("00000001.blk").path)[.size] as? Int) ?? 0
        for i in 11...15 { _ = try store.append(subject: bytes("r.x"), headers: [], payload: bytes("lost-\(i)"), timestamp: 0) }
        XCTAssertTrue(try store.remove(3))
        XCTAssertThrowsError(try Self.underFileSizeLimit(size + 40) { try store.sync() })
        let taken = store.rollBackUnsynced().taken
        XCTAssertEqual(taken.map(\.sequence), [11, 12, 13, 14, 15])
        XCTAssertEqual(taken.first?.subject, bytes("r.x"))
        XCTAssertEqual(store.state.messages, 9)
        XCTAssertEqual(store.state.lastSequence, 10)
        XCTAssertThrowsError(try store.load(11))
        XCTAssertThrowsError(try store.load(3), "the removal stands")
        XCTAssertEqual(try store.append(subject: bytes("r.y"), headers: [], payload: bytes("new-11"), timestamp: 0), 11)
        try store.close()
        let reopened = try FileStore(directory: dir)
        XCTAssertEqual(reopened.state.messages, 10)
        XCTAssertEqual(try reopened.load(11).payload, bytes("new-11"))
        XCTAssertThrowsError(try reopened.load(3))
        XCTAssertEqual(reopened.recovery.truncatedBytes, 0)
        XCTAssertTrue(reopened.recovery.damage.isEmpty)
    }

    /// Removals a publish caused (`causedBy`: its limits, its rollup) are undone with it when its sync fails; other
    /// removals since the last sync stand. Nothing of the undone removals reaches the disk.
    func testARolledBackPublishPutsBackWhatItDisplaced() throws {
        let dir = temporaryDirectory()
        let store = try FileStore(directory: dir)
        for i in 1...10 { _ = try store.append(subject: bytes("r.\(i)"), headers: [], payload: bytes("keep-\(i)"), timestamp: 0) }
        try store.sync()
        let size = (try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("00000001.blk").path)[.size] as? Int) ?? 0
        XCTAssertTrue(try store.remove(2))  // an ack: stands
        _ = try store.append(subject: bytes("r.1"), headers: [], payload: bytes("lost-11"), timestamp: 0)
        XCTAssertTrue(try store.remove(1, causedBy: 11))  // displaced by 11
        XCTAssertTrue(try store.remove(5, causedBy: 11))
        _ = try store.append(subject: bytes("r.12"), headers: [], payload: bytes("lost-12"), timestamp: 0)
        XCTAssertTrue(try store.remove(11, causedBy: 12))  // displaced by 12, itself taken back
        XCTAssertEqual(store.state.messages, 8)
        XCTAssertThrowsError(try Self.underFileSizeLimit(size + 20) { try store.sync() })
        let rollback = store.rollBackUnsynced()
        XCTAssertEqual(rollback.taken.map(\.sequence), [12], "11 was removed already")
        XCTAssertEqual(rollback.restored, [1, 5])
        XCTAssertEqual(store.state.messages, 9)
        XCTAssertEqual(store.state.firstSequence, 1)
        XCTAssertEqual(store.state.lastSequence, 10)
        XCTAssertEqual(try store.load(1).payload, bytes("keep-1"))
        XCTAssertEqual(try store.load(5).payload, bytes("keep-5"))
        XCTAssertThrowsError(try store.load(2), "the ack stands")
        try store.sync()
        try store.close()
        let reopened = try FileStore(directory: dir)
        XCTAssertEqual(reopened.state.messages, 9)
        XCTAssertEqual(try reopened.load(1).payload, bytes("keep-1"))
        XCTAssertEqual(try reopened.load(5).payload, bytes("keep-5"))
        XCTAssertThrowsError(try reopened.load(2))
        XCTAssertThrowsError(try reopened.load(11))
    }

    /// A publish whose append filled the block is made durable by the block's seal: when the group sync after it
    /// fails, it stays, and so do the removals it caused (its limits hold); a later publish is taken back with
    /// what it displaced.
    func testAPublishASealMadeDurableKeepsItsRemovals() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 4 * 1024
        let store = try FileStore(directory: dir, configuration: config)
        let second = dir.appendingPathComponent("00000002.blk").path
        var sealing: UInt64 = 0
        while !FileManager.default.fileExists(atPath: second) {
            sealing = try store.append(subject: bytes("s"), headers: [], payload: [UInt8](repeating: 0x61, count: 100), timestamp: 0)
        }
        XCTAssertTrue(try store.remove(1, causedBy: sealing))  // its max_msgs
        let later = try store.append(subject: bytes("s"), headers: [], payload: bytes("later"), timestamp: 0)
        XCTAssertTrue(try store.remove(2, causedBy: later))
        let size = (try FileManager.default.attributesOfItem(atPath: second)[.size] as? Int) ?? 0
        XCTAssertThrowsError(try Self.underFileSizeLimit(size + 10) { try store.sync() })
        let rollback = store.rollBackUnsynced()
        XCTAssertEqual(rollback.taken.map(\.sequence), [later])
        XCTAssertEqual(rollback.restored, [2])
        XCTAssertEqual(store.state.firstSequence, 2)
        XCTAssertEqual(store.state.lastSequence, sealing)
        XCTAssertEqual(store.state.messages, sealing - 1)
        try store.sync()
        try store.close()
        let reopened = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(reopened.state.firstSequence, 2)
        XCTAssertEqual(reopened.state.lastSequence, sealing)
        XCTAssertEqual(reopened.state.messages, sealing - 1)
        XCTAssertThrowsError(try reopened.load(1))
    }

    func testManyMessagesRecover() throws {
        let dir = temporaryDirectory()
        var config = FileStore.Configuration()
        config.blockSize = 1024 * 1024
        let payload = [UInt8](repeating: 0x61, count: 100)
        do {
            let store = try FileStore(directory: dir, configuration: config)
            for _ in 0..<100_000 { _ = try store.append(subject: bytes("FALCO.Notice"), headers: [], payload: payload, timestamp: 0) }
            try store.close()
        }
        let store = try FileStore(directory: dir, configuration: config)
        XCTAssertEqual(store.state.messages, 100_000)
        XCTAssertEqual(try store.load(77_777).payload, payload)
        XCTAssertEqual(store.recovery.truncatedBytes, 0)
    }

    func testLZ4AndCRC() throws {
        let input = [UInt8](repeating: 7, count: 10_000) + Array("falco".utf8)
        let compressed = try LZ4.compress(input)
        XCTAssertLessThan(compressed.count, input.count / 10)
        XCTAssertEqual(try LZ4.decompress(compressed[...], originalSize: input.count), input)
        XCTAssertThrowsError(try LZ4.decompress(compressed[...], originalSize: input.count + 1))
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)  // the standard check value
    }
}
