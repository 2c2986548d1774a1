import SwiftASN1
import X509

/// Who a client certificate says the client is, for `verify_and_map`, in the order nats-server tries the names
/// (server/auth.go checkClientTLSCertSubject): the e-mail SANs, the DNS SANs, the URI SANs, then the subject as a
/// distinguished name compared with user names written as DNs, then the subject as Go prints it
/// (pkix.Name.ToRDNSequence().String(), RFC 2253 style: `CN=alice,OU=dev,O=Acme,C=US`), first with the domain
/// components appended when it has any.
///
/// Pure: built from the certificate alone, kept on the client's connection, read by the authenticator.
public struct CertificateIdentities: Sendable, Equatable {
    public var emails: [String]
    public var dnsNames: [String]
    public var uris: [String]
    /// The subject as Go's pkix prints it (what nats-server compares user names with literally).
    public var subject: String
    /// `subject,DC=...,DC=...` when the subject has domain components (nats-server tries it before `subject`).
    public var subjectWithDomainComponents: String?
    /// The subject as nats-server's ldap.FromRawCertSubject reads it (RDNs last first), or nil when it holds an
    /// attribute that reader does not know (nats-server then skips the DN comparison).
    public var distinguishedName: DistinguishedNameValue?

    /// The names tried literally, in nats-server's order. The DN comparison (`matchesDistinguishedName`) comes
    /// between the URIs and the subject strings.
    public var literalNamesBeforeDN: [String] { emails + dnsNames + uris }
    public var literalNamesAfterDN: [String] {
        (subjectWithDomainComponents.map { [$0] } ?? []) + (subject.isEmpty ? [] : [subject])
    }
    /// Every candidate user name, in order (the DN comparison aside).
    public var candidateNames: [String] { literalNamesBeforeDN + literalNamesAfterDN }

    public init(emails: [String] = [], dnsNames: [String] = [], uris: [String] = [], subject: String = "",
                subjectWithDomainComponents: String? = nil, distinguishedName: DistinguishedNameValue? = nil) {
        self.emails = emails
        self.dnsNames = dnsNames
        self.uris = uris
        self.subject = subject
        self.subjectWithDomainComponents = subjectWithDomainComponents
        self.distinguishedName = distinguishedName
    }

    /// The identities of a DER-encoded certificate.
    public init(derEncoded bytes: [UInt8]) throws {
        self.init(certificate: try Certificate(derEncoded: bytes))
    }

    public init(certificate: Certificate) {
        var emails: [String] = [], dnsNames: [String] = [], uris: [String] = []
        if let names = try? certificate.extensions.subjectAlternativeNames {
            for name in names {
                switch name {
                case .rfc822Name(let email): emails.append(email)
                case .dnsName(let dns): dnsNames.append(dns)
                case .uniformResourceIdentifier(let uri): uris.append(uri)
                default: break
                }
            }
        }
        let rdns: [[(oid: String, value: String?)]] = certificate.subject.map { rdn in
            rdn.map { (oid: $0.type.description, value: Self.goString($0.value)) }
        }
        self.init(emails: emails, dnsNames: dnsNames, uris: uris,
                  subject: Self.goSubjectString(rdns),
                  subjectWithDomainComponents: nil,
                  distinguishedName: DistinguishedNameValue(certificateRDNs: rdns))
        let dcs = rdns.flatMap { $0 }.filter { $0.oid == Self.domainComponent }.compactMap { $0.value.map { "DC=" + $0 } }
        if !dcs.isEmpty { subjectWithDomainComponents = ([subject] + dcs).joined(separator: ",") }
    }

    /// Whether `userName`, read as a DN, names this certificate's subject: `.exact` when its RDNs are the same in
    /// the same order, `.reordered` when the same in another order (nats-server tries every exact match first).
    public func matchesDistinguishedName(_ userName: String) -> DistinguishedNameValue.Match? {
        guard let distinguishedName, let other = DistinguishedNameValue(parsing: userName) else { return nil }
        if other == distinguishedName { return .exact }
        return other.sameRDNsInAnyOrder(as: distinguishedName) ? .reordered : nil
    }

    // MARK: - Go's pkix formatting

    static let domainComponent = "0.9.2342.19200300.100.1.25"

    /// pkix.Name keeps these, in this order, when it is filled from a certificate (ToRDNSequence); anything else
    /// (e-mail addresses, DCs, UIDs) is left out of its String().
    private static let pkixOrder: [(oid: String, name: String, single: Bool)] = [
        ("2.5.4.6", "C", false), ("2.5.4.8", "ST", false), ("2.5.4.7", "L", false), ("2.5.4.9", "STREET", false),
        ("2.5.4.17", "POSTALCODE", false), ("2.5.4.10", "O", false), ("2.5.4.11", "OU", false),
        ("2.5.4.3", "CN", true), ("2.5.4.5", "SERIALNUMBER", true),
    ]

    /// pkix.Name.FillFromRDNSequence then ToRDNSequence().String(): one RDN per attribute type (several values
    /// joined by `+`), types in pkix's order, printed last first, values escaped as RFC 2253 says.
    static func goSubjectString(_ rdns: [[(oid: String, value: String?)]]) -> String {
        let attributes = rdns.flatMap { $0 }
        var sequence: [String] = []
        for (oid, name, single) in pkixOrder {
            var values = attributes.filter { $0.oid == oid }.compactMap(\.value)
            if single, let last = values.last { values = last.isEmpty ? [] : [last] }  // CN, SERIALNUMBER: the last one
            guard !values.isEmpty else { continue }
            sequence.append(values.map { "\(name)=\(escape($0))" }.joined(separator: "+"))
        }
        return sequence.reversed().joined(separator: ",")
    }

    /// RDNSequence.String()'s escaping: `,+"\<>;` always, a space first or last, `#` first.
    static func escape(_ value: String) -> String {
        var out = ""
        let scalars = Array(value.unicodeScalars)
        for (index, scalar) in scalars.enumerated() {
            let escaped: Bool
            switch scalar {
            case ",", "+", "\"", "\\", "<", ">", ";": escaped = true
            case " ": escaped = index == 0 || index == scalars.count - 1
            case "#": escaped = index == 0
            default: escaped = false
            }
            if escaped { out.append("\\") }
            out.unicodeScalars.append(scalar)
        }
        return out
    }

    /// What Go's asn1 reads as a string: PrintableString, UTF8String, IA5String, T61String, BMPString.
    static func goString(_ value: RelativeDistinguishedName.Attribute.Value) -> String? {
        if let string = String(value) { return string }
        let any = ASN1Any(value)
        if let teletex = try? ASN1TeletexString(asn1Any: any) { return String(decoding: teletex.bytes, as: UTF8.self) }
        if let bmp = try? ASN1BMPString(asn1Any: any), bmp.bytes.count % 2 == 0 {
            let units = stride(from: bmp.bytes.startIndex, to: bmp.bytes.endIndex, by: 2).map {
                UInt16(bmp.bytes[$0]) << 8 | UInt16(bmp.bytes[$0 + 1])
            }
            return String(decoding: units, as: UTF16.self)
        }
        return nil
    }
}

/// A distinguished name as nats-server's internal ldap package holds one: RDNs of (type, value), compared with the
/// type's case ignored and the value exactly.
public struct DistinguishedNameValue: Sendable, Equatable {
    public struct Attribute: Sendable, Equatable {
        public var type: String
        public var value: String
        public static func == (a: Self, b: Self) -> Bool {
            a.type.lowercased() == b.type.lowercased() && a.value == b.value
        }
    }

    public enum Match: Sendable, Equatable { case exact, reordered }

    /// RDNs, each a set of attributes.
    public var rdns: [[Attribute]]

    public init(rdns: [[Attribute]]) { self.rdns = rdns }

    /// The type names ldap.FromRawCertSubject knows; a certificate with any other attribute has no DN there.
    private static let typeNames: [String: String] = [
        "2.5.4.3": "CN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
        "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.17": "POSTALCODE",
        "0.9.2342.19200300.100.1.25": "DC",
    ]

    /// ldap.FromRawCertSubject: the certificate's RDNs last first, each RDN's attributes last first.
    init?(certificateRDNs: [[(oid: String, value: String?)]]) {
        var rdns: [[Attribute]] = []
        for rdn in certificateRDNs.reversed() where !rdn.isEmpty {
            var attributes: [Attribute] = []
            for attribute in rdn.reversed() {
                guard let type = Self.typeNames[attribute.oid], let value = attribute.value else { return nil }
                attributes.append(Attribute(type: type, value: value))
            }
            rdns.append(attributes)
        }
        self.rdns = rdns
    }

    /// ldap.ParseDN: `CN=alice, O=Acme` (spaces after separators skipped, `\,` and `\2C` escapes); nil when it is
    /// not a DN (nats-server then skips that user for the DN comparison).
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        var rdns: [[Attribute]] = []
        var rdn: [Attribute] = []
        var buffer: [UInt8] = []
        var type: String?
        var escaping = false
        var trailingSpaces = 0
        func take() -> String {
            let s = String(decoding: buffer.dropLast(trailingSpaces), as: UTF8.self)
            buffer.removeAll()
            trailingSpaces = 0
            return s
        }
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if escaping {
                trailingSpaces = 0
                escaping = false
                if Array(" \"#+,;<=>\\".utf8).contains(c) {
                    buffer.append(c)
                } else {
                    guard i + 1 < bytes.count, let byte = UInt8(String(decoding: bytes[i...i + 1], as: UTF8.self), radix: 16) else {
                        return nil
                    }
                    buffer.append(byte)
                    i += 1
                }
            } else if c == UInt8(ascii: "\\") {
                trailingSpaces = 0
                escaping = true
            } else if c == UInt8(ascii: "=") {
                type = take()
                if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "#") { return nil }  // BER values: unsupported
            } else if c == UInt8(ascii: ",") || c == UInt8(ascii: "+") {
                guard let t = type, !t.isEmpty else { return nil }
                rdn.append(Attribute(type: t, value: take()))
                type = nil
                if c == UInt8(ascii: ",") {
                    rdns.append(rdn)
                    rdn = []
                }
            } else if c == UInt8(ascii: " ") && buffer.isEmpty {
                // leading space: skipped
            } else {
                trailingSpaces = c == UInt8(ascii: " ") ? trailingSpaces + 1 : 0
                buffer.append(c)
            }
            i += 1
        }
        if !buffer.isEmpty {
            guard let t = type, !t.isEmpty else { return nil }
            rdn.append(Attribute(type: t, value: take()))
            rdns.append(rdn)
        }
        self.rdns = rdns
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.rdns.count == b.rdns.count && zip(a.rdns, b.rdns).allSatisfy { Self.sameRDN($0, $1) }
    }

    /// ldap.DN.RDNsMatch: the same RDNs, in any order.
    func sameRDNsInAnyOrder(as other: Self) -> Bool {
        guard rdns.count == other.rdns.count else { return false }
        var matched = [Bool](repeating: false, count: other.rdns.count)
        for rdn in rdns {
            guard let j = other.rdns.indices.first(where: { !matched[$0] && Self.sameRDN(rdn, other.rdns[$0]) }) else {
                return false
            }
            matched[j] = true
        }
        return true
    }

    private static func sameRDN(_ a: [Attribute], _ b: [Attribute]) -> Bool {
        a.count == b.count && a.allSatisfy { b.contains($0) } && b.allSatisfy { a.contains($0) }
    }
}
