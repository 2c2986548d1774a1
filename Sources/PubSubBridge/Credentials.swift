import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import _CryptoExtras

/// Where the bridge's bearer token comes from.
public enum PubSubCredentials: Sendable {
    /// `PUBSUB_EMULATOR_HOST`: plain HTTP, no Authorization header.
    case none
    /// A service-account JSON key: a self-signed RS256 JWT (aud `https://pubsub.googleapis.com/`), used directly as
    /// the bearer token, so no token exchange and no network call is needed to authenticate.
    case serviceAccount(ServiceAccountKey)
    /// GKE Workload Identity (or any GCE VM): the metadata server hands out access tokens.
    case metadataServer(host: String)

    public static let emulatorHostVariable = "PUBSUB_EMULATOR_HOST"
    public static let metadataHostVariable = "GCE_METADATA_HOST"
    public static let defaultMetadataHost = "metadata.google.internal"

    /// Picks as documented (PUBSUB.md, Credentials): emulator env -> `.none`; a key file path given ->
    /// `.serviceAccount` (throws a clear error if unreadable/invalid); otherwise -> `.metadataServer`.
    /// The emulator wins over a key file so that a config written for production still runs against the emulator.
    public static func resolve(keyPath: String?, environment: [String: String]) throws -> PubSubCredentials {
        if let emulator = environment[emulatorHostVariable], !emulator.isEmpty {
            return .none
        }
        if let keyPath, !keyPath.isEmpty {
            return .serviceAccount(try ServiceAccountKey(contentsOfFile: keyPath))
        }
        let host = environment[metadataHostVariable].flatMap { $0.isEmpty ? nil : $0 } ?? defaultMetadataHost
        return .metadataServer(host: host)
    }
}

/// Every way getting a token can fail, each with a message that says what to fix.
public indirect enum PubSubCredentialsError: Error, Equatable, CustomStringConvertible {
    case keyFileUnreadable(path: String, reason: String)
    case keyFileInvalid(path: String, PubSubCredentialsError)
    case keyNotJSON(String)
    case keyFieldMissing(String)
    case keyWrongType(String)
    case keyBadPEM(String)
    case signingFailed(String)
    case metadataStatus(url: String, status: Int, body: String)
    case metadataUnreachable(url: String, attempts: Int, reason: String)
    case metadataBadResponse(url: String, reason: String)

    public var description: String {
        switch self {
        case .keyFileUnreadable(let path, let reason):
            return "cannot read the service-account key file \(path): \(reason)"
        case .keyFileInvalid(let path, let error):
            return "service-account key file \(path): \(error)"
        case .keyNotJSON(let reason):
            return "the service-account key is not a JSON object (\(reason))"
        case .keyFieldMissing(let field):
            return "the service-account key has no \"\(field)\" string (is this a JSON key downloaded for a service account?)"
        case .keyWrongType(let type):
            return "the key's \"type\" is \"\(type)\", expected \"service_account\""
        case .keyBadPEM(let reason):
            return "the service-account key's \"private_key\" is not an RSA private key in PEM (PKCS#8) of 2048 bits or more: \(reason)"
        case .signingFailed(let reason):
            return "signing the JWT failed: \(reason)"
        case .metadataStatus(let url, let status, let body):
            return "the metadata server answered HTTP \(status) for \(url): \(body.isEmpty ? "(no body)" : body)"
                + " (on GKE, is Workload Identity enabled and the Kubernetes service account bound to a Google one?)"
        case .metadataUnreachable(let url, let attempts, let reason):
            return "no token from the metadata server at \(url) after \(attempts) attempt(s): \(reason)"
                + " (outside GCP, set PUBSUB_EMULATOR_HOST or give a service-account key file)"
        case .metadataBadResponse(let url, let reason):
            return "the metadata server's answer from \(url) is not a token: \(reason)"
        }
    }
}

/// A Google service-account JSON key, parsed once; it signs its own JWTs (RS256).
public struct ServiceAccountKey: Sendable, CustomStringConvertible {
    public let clientEmail: String
    public let privateKeyID: String
    public let projectID: String?
    let privateKey: _RSA.Signing.PrivateKey

    /// The audience Pub/Sub accepts for self-signed JWTs ("JWT access" without an OAuth exchange).
    public static let pubSubAudience = "https://pubsub.googleapis.com/"

    public init(json: [UInt8]) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(json))
        } catch {
            throw PubSubCredentialsError.keyNotJSON((error as NSError).localizedDescription)
        }
        guard let fields = object as? [String: Any] else { throw PubSubCredentialsError.keyNotJSON("not an object") }
        // A user's or a workload-federation credential file has another "type"; say so rather than "field missing".
        if let type = fields["type"] as? String, type != "service_account" {
            throw PubSubCredentialsError.keyWrongType(type)
        }
        func field(_ name: String) throws -> String {
            guard let value = fields[name] as? String, !value.isEmpty else { throw PubSubCredentialsError.keyFieldMissing(name) }
            return value
        }
        clientEmail = try field("client_email")
        privateKeyID = try field("private_key_id")
        projectID = fields["project_id"] as? String
        let pem = try field("private_key")
        do {
            privateKey = try _RSA.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw PubSubCredentialsError.keyBadPEM(String(describing: error))
        }
    }

    /// Reads and parses a key file; errors name the file.
    public init(contentsOfFile path: String) throws {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PubSubCredentialsError.keyFileUnreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        do {
            try self.init(json: bytes)
        } catch let error as PubSubCredentialsError {
            throw PubSubCredentialsError.keyFileInvalid(path: path, error)
        }
    }

    /// Never prints the private key.
    public var description: String { "ServiceAccountKey(\(clientEmail), key id \(privateKeyID))" }

    /// header `{"alg":"RS256","kid":privateKeyID,"typ":"JWT"}`; claims iss=sub=clientEmail,
    /// aud=`https://pubsub.googleapis.com/`, iat, exp = iat + lifetime. Google accepts at most one hour.
    public func jwt(issuedAt: Int64, lifetime: Int64 = 3600) throws -> String {
        struct Header: Encodable { let alg = "RS256", typ = "JWT", kid: String }
        struct Claims: Encodable { let iss: String, sub: String, aud: String, iat: Int64, exp: Int64 }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let header = try encoder.encode(Header(kid: privateKeyID))
        let claims = try encoder.encode(Claims(
            iss: clientEmail, sub: clientEmail, aud: Self.pubSubAudience, iat: issuedAt, exp: issuedAt + lifetime))
        let signingInput = base64URLEncoded(header) + "." + base64URLEncoded(claims)
        do {
            // RS256 = RSASSA-PKCS1-v1_5 over SHA-256; swift-crypto calls that padding "insecure" only because PSS
            // is preferred for new protocols, but JWT's RS256 fixes it.
            let signature = try privateKey.signature(for: Array(signingInput.utf8), padding: .insecurePKCS1v1_5)
            return signingInput + "." + base64URLEncoded(signature.rawRepresentation)
        } catch {
            throw PubSubCredentialsError.signingFailed(String(describing: error))
        }
    }
}

/// JWT segments are base64url without padding (RFC 7515, section 2).
private func base64URLEncoded(_ data: some DataProtocol) -> String {
    var text = Data(data).base64EncodedString()
    text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    while text.hasSuffix("=") { text.removeLast() }
    return text
}

/// Hands out a valid bearer token, renewing it before it expires. Clock injected (unix seconds).
/// The caller sends it as `Authorization: Bearer <token>`.
public actor TokenProvider {
    private let credentials: PubSubCredentials
    private let httpClient: HTTPClient
    private let now: @Sendable () -> Int64
    private let renewBefore: Int64
    /// Pauses between metadata-server attempts while no token was ever fetched: the GKE metadata server can take
    /// a few seconds to answer after the pod starts. About 15 s of pauses in all (plus up to 5 s per attempt).
    private let retryDelays: [Duration]
    /// Per metadata request. AsyncHTTPClient keeps retrying a refused connection until this deadline, so an absent
    /// server costs the full timeout per attempt.
    private let requestTimeout: TimeAmount
    private var cached: CachedToken?
    /// One fetch at a time: callers arriving while it runs (the actor is reentrant across `await`) wait for it.
    private var inFlight: Task<CachedToken, Error>?

    struct CachedToken: Sendable {
        let token: String
        let expiry: Int64
        /// When to fetch or sign a new one (before `expiry`).
        let renewAt: Int64
    }

    static let maxMetadataBody = 64 * 1024

    public init(credentials: PubSubCredentials, httpClient: HTTPClient,
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
                renewBefore: Int64 = 300) {
        self.init(credentials: credentials, httpClient: httpClient, now: now, renewBefore: renewBefore,
                  retryDelays: [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8)],
                  requestTimeout: .seconds(5))
    }

    init(credentials: PubSubCredentials, httpClient: HTTPClient, now: @escaping @Sendable () -> Int64,
         renewBefore: Int64, retryDelays: [Duration], requestTimeout: TimeAmount = .seconds(5)) {
        self.credentials = credentials
        self.httpClient = httpClient
        self.now = now
        self.renewBefore = renewBefore
        self.retryDelays = retryDelays
        self.requestTimeout = requestTimeout
    }

    /// For tests and /varz: when the cached token expires (unix seconds), if any.
    public var expiry: Int64? { cached?.expiry }

    /// nil for `.none`. Otherwise the cached token while more than `renewBefore` seconds remain (half its life for
    /// a metadata token that lives less than 2 x renewBefore), else a new one.
    public func token() async throws -> String? {
        switch credentials {
        case .none:
            return nil
        case .serviceAccount(let key):
            let issuedAt = now()
            if let cached, issuedAt < cached.renewAt { return cached.token }
            // Signing is local and cheap (~1 ms), but caching keeps one token per hour, as Google's clients do.
            let lifetime: Int64 = 3600
            let jwt = try key.jwt(issuedAt: issuedAt, lifetime: lifetime)
            cached = CachedToken(token: jwt, expiry: issuedAt + lifetime, renewAt: issuedAt + lifetime - renewBefore)
            return jwt
        case .metadataServer(let host):
            if let cached, now() < cached.renewAt { return cached.token }
            if let inFlight { return try await inFlight.value.token }
            let attempts = cached == nil ? retryDelays.count + 1 : 1
            let task = Task { try await self.fetchFromMetadataServer(host: host, attempts: attempts) }
            inFlight = task
            defer { inFlight = nil }
            do {
                let fresh = try await task.value
                cached = fresh
                return fresh.token
            } catch {
                // A failed renewal is not fatal while the old token still works; the next call tries again.
                if let cached, now() < cached.expiry { return cached.token }
                throw error
            }
        }
    }

    /// GET the default service account's token; transport errors, timeouts, 408, 429 and 5xx are retried (only while
    /// no token was ever fetched), any other status is thrown at once with the server's own words.
    private func fetchFromMetadataServer(host: String, attempts: Int) async throws -> CachedToken {
        let url = "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token"
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        // Required: the metadata server refuses requests without it (a guard against SSRF through proxies).
        request.headers.add(name: "Metadata-Flavor", value: "Google")
        var lastFailure = ""
        for attempt in 0..<attempts {
            if attempt > 0 { try await Task.sleep(for: retryDelays[attempt - 1]) }
            let status: HTTPResponseStatus
            let body: ByteBuffer
            do {
                let response = try await httpClient.execute(request, timeout: requestTimeout)
                status = response.status
                body = try await response.body.collect(upTo: Self.maxMetadataBody)
            } catch {
                lastFailure = String(describing: error)
                continue
            }
            let text = String(buffer: body)
            guard status == .ok else {
                let retryable = status == .requestTimeout || status == .tooManyRequests || status.code >= 500
                if retryable {
                    lastFailure = "HTTP \(status.code): \(text.prefix(200))"
                    continue
                }
                throw PubSubCredentialsError.metadataStatus(url: url, status: Int(status.code), body: String(text.prefix(500)))
            }
            return try parseToken(text, url: url)
        }
        throw PubSubCredentialsError.metadataUnreachable(url: url, attempts: attempts, reason: lastFailure)
    }

    private func parseToken(_ text: String, url: String) throws -> CachedToken {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw PubSubCredentialsError.metadataBadResponse(url: url, reason: "not a JSON object: \(text.prefix(200))")
        }
        guard let token = object["access_token"] as? String, !token.isEmpty else {
            throw PubSubCredentialsError.metadataBadResponse(url: url, reason: "no \"access_token\"")
        }
        guard let expiresIn = (object["expires_in"] as? NSNumber)?.int64Value, expiresIn > 0 else {
            throw PubSubCredentialsError.metadataBadResponse(url: url, reason: "no positive \"expires_in\"")
        }
        if let type = object["token_type"] as? String, type.lowercased() != "bearer" {
            throw PubSubCredentialsError.metadataBadResponse(url: url, reason: "\"token_type\" is \"\(type)\", not Bearer")
        }
        // The metadata server caches tokens itself and may hand out one with little time left; if that is under
        // renewBefore, renew at half its remaining life instead of asking again on every call.
        let expiry = now() + expiresIn
        return CachedToken(token: token, expiry: expiry, renewAt: expiry - min(renewBefore, expiresIn / 2))
    }
}
