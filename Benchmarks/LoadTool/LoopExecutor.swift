import NIOCore

/// Runs Swift tasks on a NIO event loop. reqrep puts its requester and responder tasks and both connections on
/// one single-threaded loop, so a round trip has no thread hop inside the client: what it measures is the
/// server (and the sockets), not cross-thread wake-ups in the tool.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
