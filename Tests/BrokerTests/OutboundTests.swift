import NIOCore
import NIOEmbedded
import XCTest

@testable import Broker

/// The outbound on a real (embedded) channel: what reaches the socket, in which order, and the slow-consumer rule.
final class OutboundTests: XCTestCase {
    final class Owner: OutboundOwner, @unchecked Sendable {
        var cutOffReasons: [String] = []
        var removed: [Subscription] = []
        func removeSubscription(_ sub: Subscription) { removed.append(sub) }
        func cutOff(slowConsumer reason: String) { cutOffReasons.append(reason) }
    }

    final class Capture: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var context: ChannelHandlerContext?
        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    }

    private func setUp(maxPending: Int = 1 << 20) throws -> (EmbeddedChannel, Outbound, Owner) {
        let channel = EmbeddedChannel()
        let capture = Capture()
        try channel.pipeline.syncOperations.addHandler(capture)
        let router = Router(index: 0, eventLoop: channel.embeddedEventLoop, sublist: Sublist(), random: SplitMix64(seed: 1))
        let outbound = Outbound(id: 1, router: router, loopCount: 2, maxPending: maxPending)
        let owner = Owner()
        outbound.owner = owner
        outbound.context = capture.context
        return (channel, outbound, owner)
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var all = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { all += String(buffer: buffer) }
        return all
    }

    func testFlushWritesWhatIsPendingOnce() throws {
        let (channel, outbound, _) = try setUp()
        outbound.out.writeString("MSG a 1 0\r\n\r\n")
        XCTAssertEqual(outbound.pendingBytes, 13)
        outbound.flush()
        XCTAssertEqual(try written(channel), "MSG a 1 0\r\n\r\n")
        XCTAssertEqual(outbound.pendingBytes, 0)
        outbound.flush()
        XCTAssertEqual(try written(channel), "")
    }

    func testBatchesFromOtherLoopsGoOutBehindWhatIsAlreadyQueued() throws {
        let (channel, outbound, _) = try setUp()
        outbound.out.writeString("first ")
        outbound.enqueueFromOtherLoop(ByteBuffer(string: "second "), messages: 1)
        outbound.enqueueFromOtherLoop(ByteBuffer(string: "third"), messages: 2)
        channel.embeddedEventLoop.run()  // the drain task the first hand-over scheduled
        XCTAssertEqual(try written(channel), "first second third")
        XCTAssertEqual(outbound.outMsgs, 3)
    }

    func testABacklogFromOtherLoopsClosesTheStallGate() throws {
        let (_, outbound, _) = try setUp(maxPending: 400)
        outbound.enqueueFromOtherLoop(ByteBuffer(repeating: 0x41, count: 150), messages: 1)
        XCTAssertTrue(outbound.stallGate.load(ordering: .relaxed), "over a quarter of max_pending waiting")
    }

    func testNothingIsWrittenOnceClosed() throws {
        let (channel, outbound, _) = try setUp()
        outbound.close()
        outbound.out.writeString("late")
        outbound.flush()
        XCTAssertEqual(try written(channel), "")
        XCTAssertTrue(outbound.isClosed)
    }

    func testNoWriteDeadlineWhileNothingIsBuffered() throws {
        let (_, outbound, _) = try setUp()
        XCTAssertFalse(outbound.writeDeadlinePassed(now: .now(), deadline: .nanoseconds(1)))
        XCTAssertFalse(outbound.writeDeadlinePassed(now: .now() + .seconds(10), deadline: .nanoseconds(1)))
    }
}
