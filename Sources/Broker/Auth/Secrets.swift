import CCrypt
import Foundation

/// Passwords and tokens as nats-server compares them: a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$` and a
/// two-digit cost) is checked with bcrypt (libxcrypt's crypt_r); anything else is plaintext, compared in
/// constant time.
public enum Secrets {
    /// nats-server's isBcrypt: `^\$2[abxy]\$\d{2}\$.*`.
    static func isBcrypt(_ secret: String) -> Bool {
        let b = Array(secret.utf8)
        guard b.count >= 7, b[0] == UInt8(ascii: "$"), b[1] == UInt8(ascii: "2"),
              [UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "x"), UInt8(ascii: "y")].contains(b[2]),
              b[3] == UInt8(ascii: "$"), isDigit(b[4]), isDigit(b[5]), b[6] == UInt8(ascii: "$")
        else { return false }
        return true
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// nats-server's comparePasswords. A bcrypt check takes tens of milliseconds by design: callers run it off
    /// the event loops (see `Authenticator.isExpensive`).
    static func matches(configured: String, given: String) -> Bool {
        if isBcrypt(configured) { return bcryptMatches(hash: configured, password: given) }
        return constantTimeEquals(configured, given)
    }

    /// A bcrypt hash (`$2a$`, as nats-server's `nats server passwd` writes) of `password` with a random salt;
    /// nil when the system's crypt cannot make one. `cost` is bcrypt's log2 rounds (4...31; 11 by default).
    public static func bcryptHash(password: String, cost: Int = 11) -> String? {
        guard (4...31).contains(cost), !password.utf8.contains(0) else { return nil }
        var salt = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        // A nil random-bytes argument makes libxcrypt read the system's random source.
        guard crypt_gensalt_rn("$2a$", UInt(cost), nil, 0, &salt, Int32(salt.count)) != nil,
              let hash = hashed(password, setting: String(cString: salt)) else { return nil }
        return isBcrypt(hash) ? hash : nil
    }

    static func bcryptMatches(hash: String, password: String) -> Bool {
        // Both Go's bcrypt and crypt_r use the first 72 bytes; a NUL cannot pass through a C string.
        guard !password.utf8.contains(0) else { return false }
        guard let computed = hashed(password, setting: hash) else { return false }
        // libxcrypt returns "*0"/"*1" on failure, never the hash.
        return computed.utf8.count == hash.utf8.count && constantTimeEquals(computed, hash)
    }
}

extension Secrets {
    /// libxcrypt's thread-safe crypt_r, with its (large) work area on the heap for one call.
    fileprivate static func hashed(_ password: String, setting: String) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        return crypt_r(password, setting, data).map { String(cString: $0) }
    }
}

/// Compares secrets without an early exit, so timing does not reveal how much of a guess was right.
func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return diff == 0
}
