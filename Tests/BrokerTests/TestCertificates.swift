import Crypto
import Foundation
import SwiftASN1
import X509

/// Short-lived certificates made at run time for the TLS tests (never checked in): a CA, and leaves it signs.
struct TestCertificates {
    let caKey = P256.Signing.PrivateKey()
    let caName: DistinguishedName
    let ca: Certificate

    init() throws {
        caName = try DistinguishedName { CommonName("brokerd test CA") }
        let key = Certificate.PrivateKey(caKey)
        ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
            issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                KeyUsage(keyCertSign: true)
            },
            issuerPrivateKey: key)
    }

    /// A leaf signed by the CA, with its key.
    func leaf(subject: DistinguishedName, alternativeNames: [GeneralName] = []) throws -> (Certificate, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
            issuer: caName, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                if !alternativeNames.isEmpty { SubjectAlternativeNames(alternativeNames) }
            },
            issuerPrivateKey: .init(caKey))
        return (certificate, key)
    }

    static func pem(_ certificate: Certificate) throws -> String {
        try certificate.serializeAsPEM().pemString
    }

    static func pem(_ key: P256.Signing.PrivateKey) -> String {
        key.pemRepresentation
    }
}
