import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import NIOPosix
import XCTest

@testable import Broker

final class HTTPEndpointTests: XCTestCase {
    func testTasksPreferringALoopRunOnIt() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let onLoop = await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) { () async -> [Bool] in
            var seen = [loop.inEventLoop]
            try? await Task.sleep(for: .milliseconds(1))  // and after a suspension too
            seen.append(loop.inEventLoop)
            return seen
        }
        XCTAssertEqual(onLoop, [true, true])
        try await group.shutdownGracefully()
    }

    func testAResponseThatSaysCloseClosesTheConnectionOnceWritten() throws {
        let channel = EmbeddedChannel(handler: CloseAfterResponseHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        XCTAssertTrue(channel.isActive, "keep-alive answers leave the connection open")
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .contentTooLarge, headerFields: [.connection: "close"])))
        XCTAssertTrue(channel.isActive)
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
        var parts = 0
        while try channel.readOutbound(as: HTTPResponsePart.self) != nil { parts += 1 }
        XCTAssertEqual(parts, 4, "every part is still written")
    }
}
