import ServiceLifecycle
import Synchronization

/// The broker's parts as `Service`s, for one `ServiceGroup` (brokerd's main). A ServiceGroup starts its
/// services together and, on graceful shutdown (SIGTERM/SIGINT), stops them one at a time in the reverse
/// order of its list, each after the one behind it has returned. brokerd lists them so that shutdown goes:
///
/// 1. stop accepting: the NATS listener (`listenerService`), then the Falco and monitor HTTP listeners;
/// 2. the Pub/Sub bridges drain (the batches Pub/Sub is taking are acked, nothing new is pulled);
/// 3. every client connection is flushed and closed (`connectionsService`);
/// 4. JetStream writes its consumer state and closes its store, last (`jetStreamService`).
///
/// Each one waits for graceful shutdown and then does its step; cancelled (another service failed), it does
/// its step at once.
extension BrokerServer {
    /// The NATS listener: `run()` binds (JetStream opened, the Falco ingest attached, then the port); on
    /// graceful shutdown it stops accepting. Connected clients stay until `connectionsService` stops.
    public var listenerService: some Service { Listener(server: self) }

    /// The client connections: on graceful shutdown each is flushed and closed.
    public var connectionsService: some Service { Connections(server: self) }

    /// JetStream (its 100 ms tick runs on its own queue from `start()`): on graceful shutdown it stops ticking,
    /// writes the consumer state and closes the store.
    public var jetStreamService: some Service { JetStreamStore(server: self) }

    struct Listener: Service, CustomStringConvertible {
        let server: BrokerServer
        var description: String { "NATS listener" }

        func run() async throws {
            try await server.start()
            try? await gracefulShutdown()
            await server.stopAccepting()
        }
    }

    struct Connections: Service, CustomStringConvertible {
        let server: BrokerServer
        var description: String { "client connections" }

        func run() async {
            try? await gracefulShutdown()
            await server.closeClients()
        }
    }

    struct JetStreamStore: Service, CustomStringConvertible {
        let server: BrokerServer
        var description: String { "JetStream store" }

        func run() async {
            try? await gracefulShutdown()
            server.closeJetStream()
        }
    }
}

/// Opens once, or fails once; `wait()` returns (or throws) then. Cancellable.
final class Readiness: Sendable {
    private enum State {
        case waiting([UInt64: CheckedContinuation<Void, any Error>], next: UInt64)
        case open
        case failed(any Error)
    }

    private let state = Mutex<State>(.waiting([:], next: 0))

    func open() { settle(.open) }

    func fail(_ error: any Error) { settle(.failed(error)) }

    private func settle(_ outcome: State) {
        let waiters: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            guard case .waiting(let waiters, _) = state else { return [] }
            state = outcome
            return Array(waiters.values)
        }
        for waiter in waiters {
            if case .failed(let error) = outcome { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }

    func wait() async throws {
        let id: UInt64 = try state.withLock { state in
            switch state {
            case .open: return 0
            case .failed(let error): throw error
            case .waiting(let waiters, let next):
                state = .waiting(waiters, next: next + 1)
                return next + 1
            }
        }
        if id == 0 { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Bool, any Error> = state.withLock { state in
                    switch state {
                    case .open: return .success(true)
                    case .failed(let error): return .failure(error)
                    case .waiting(var waiters, let next):
                        if Task.isCancelled { return .failure(CancellationError()) }
                        waiters[id] = continuation
                        state = .waiting(waiters, next: next)
                        return .success(false)
                    }
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, any Error>? = state.withLock { state in
                guard case .waiting(var waiters, let next) = state, let waiter = waiters.removeValue(forKey: id) else { return nil }
                state = .waiting(waiters, next: next)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
