import NIOCore

/// What belongs to one event loop: its router and the clients living on it (for monitoring, lame duck, the
/// write-deadline sweep and reloads). Touched only on that loop.
final class LoopContext: @unchecked Sendable {
    let router: Router
    var connections: [UInt64: ClientConnection] = [:]

    init(router: Router) {
        self.router = router
    }

    var index: Int { router.index }
    var eventLoop: any EventLoop { router.eventLoop }
}
