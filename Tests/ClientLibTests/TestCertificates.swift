import Foundation
import XCTest

/// Certificates made at test time with the real `openssl` (never checked in, valid for a day): a CA, a server
/// certificate for `localhost` and 127.0.0.1, one for `broker.example.com` only (no IP address: the host name
/// check), a client certificate, and an unrelated CA with its own server certificate (for the failures).
struct TestCertificates {
    let directory: URL
    var caCert: String { path("ca.pem") }
    var serverCert: String { path("server.pem") }
    var serverKey: String { path("server-key.pem") }
    var clientCert: String { path("client.pem") }
    var clientKey: String { path("client-key.pem") }
    var otherCA: String { path("other-ca.pem") }
    var otherServerCert: String { path("other-server.pem") }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Skips the test when openssl is missing.
    static func make() throws -> TestCertificates {
        guard let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("openssl not found")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clientlib-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certs = TestCertificates(directory: directory)
        let run = { (args: [String]) throws in try certs.run(openssl, args) }
        for ca in ["ca", "other-ca"] {
            try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                     "-subj", "/CN=brokerd test \(ca)", "-keyout", certs.path("\(ca)-key.pem"), "-out", certs.path("\(ca).pem"),
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        }
        try certs.issue(run, name: "server", ca: "ca", cn: "localhost",
                        extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        try certs.issue(run, name: "named-server", ca: "ca", cn: "broker.example.com",
                        extensions: "subjectAltName=DNS:broker.example.com\nextendedKeyUsage=serverAuth\n")
        try certs.issue(run, name: "client", ca: "ca", cn: "falco-pipe",
                        extensions: "subjectAltName=DNS:falco-pipe\nextendedKeyUsage=clientAuth\n")
        try certs.issue(run, name: "other-server", ca: "other-ca", cn: "localhost",
                        extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        return certs
    }

    private func issue(_ run: ([String]) throws -> Void, name: String, ca: String, cn: String, extensions: String) throws {
        let ext = path("\(name).ext")
        try extensions.write(toFile: ext, atomically: true, encoding: .utf8)
        try run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=\(cn)",
                 "-keyout", path("\(name)-key.pem"), "-out", path("\(name).csr")])
        try run(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca)-key.pem"),
                 "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", path("\(name).pem")])
    }

    private func run(_ openssl: String, _ args: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = args
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "openssl", code: Int(process.terminationStatus), userInfo: [NSLocalizedDescriptionKey:
                "openssl \(args.joined(separator: " ")): \(String(decoding: output, as: UTF8.self))"])
        }
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A nats-server configuration file with this `tls {}` block (brokerd reads the same format).
    /// `server`: the name of the server certificate (`server`, `named-server`).
    func config(server: String = "server", verify: Bool = false, handshakeFirst: Bool = false,
                allowNonTLS: Bool = false) throws -> String {
        var text = "tls {\n  cert_file: \"\(path("\(server).pem"))\"\n  key_file: \"\(path("\(server)-key.pem"))\"\n  ca_file: \"\(caCert)\"\n  timeout: 2\n"
        if verify { text += "  verify: true\n" }
        if handshakeFirst { text += "  handshake_first: true\n" }
        text += "}\n"
        if allowNonTLS { text += "allow_non_tls: true\n" }
        let file = path("server-\(UUID().uuidString).conf")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}
