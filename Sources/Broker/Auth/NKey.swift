import Crypto
import Foundation

/// NATS nkeys (nats-io/nkeys): a public key is base32 (RFC 4648, no padding) of a prefix byte, the 32-byte
/// Ed25519 key and a CRC-16 (XMODEM, little-endian) of both. Users' keys start with "U". CONNECT's `sig` is the
/// Ed25519 signature of INFO's nonce.
enum NKey {
    /// nkeys' PrefixByteUser (20 << 3): the first base32 character "U".
    static let userPrefix: UInt8 = 20 << 3

    /// The raw Ed25519 key of a valid public user nkey, nil otherwise (nkeys.IsValidPublicUserKey).
    static func userPublicKey(_ text: String) -> [UInt8]? {
        guard let raw = base32Decode(text), raw.count == 35 else { return nil }
        let body = raw[0..<33]
        let crc = UInt16(raw[33]) | UInt16(raw[34]) << 8
        guard crc16(body) == crc, raw[0] == userPrefix else { return nil }
        return Array(raw[1..<33])
    }

    static func isValidPublicUserKey(_ text: String) -> Bool { userPublicKey(text) != nil }

    /// Whether `signature` (base64url without padding, or standard base64, as nats-server accepts) is the
    /// key's signature of `nonce`.
    static func verify(publicKey text: String, signature: String, nonce: [UInt8]) -> Bool {
        guard let raw = userPublicKey(text),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
              let sig = base64URLDecode(signature) ?? Data(base64Encoded: signature)
        else { return false }
        return key.isValidSignature(sig, for: Data(nonce))
    }

    static func base64URLDecode(_ text: String) -> Data? {
        guard !text.contains("="), !text.contains("+"), !text.contains("/") else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard)
    }

    /// RFC 4648 base32, upper case, without padding (Go's base32.StdEncoding.WithPadding(NoPadding)).
    static func base32Decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for c in text.utf8 {
            let value: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = c - UInt8(ascii: "A")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = c - UInt8(ascii: "2") + 26
            default: return nil
            }
            buffer = buffer << 5 | UInt32(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero and fewer than 5 (a canonical encoding).
        if bits >= 5 || buffer & ((1 << UInt32(bits)) - 1) != 0 { return nil }
        return out
    }

    static func base32Encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int(buffer >> UInt32(bits) & 31)])
            }
        }
        if bits > 0 { out.append(alphabet[Int(buffer << UInt32(5 - bits) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// CRC-16/XMODEM (polynomial 0x1021, initial value 0), nkeys' checksum.
    static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }

    /// A public user nkey for a raw Ed25519 key (tests, and `brokerd` tooling).
    static func encodeUserPublicKey(_ raw: [UInt8]) -> String {
        var body = [userPrefix] + raw
        let crc = crc16(body)
        body += [UInt8(crc & 0xFF), UInt8(crc >> 8)]
        return base32Encode(body)
    }
}
