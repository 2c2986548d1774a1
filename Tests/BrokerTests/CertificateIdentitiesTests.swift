import SwiftASN1
import X509
import XCTest
@testable import Broker

/// The identities verify_and_map tries, in nats-server's order and with Go's subject formatting
/// (`CertificateIdentities`).
final class CertificateIdentitiesTests: XCTestCase {
    func testOrderEmailsThenDNSNamesThenURIsThenSubject() throws {
        let certs = try TestCertificates()
        let subject = try DistinguishedName {
            CountryName("US")
            StateOrProvinceName("CA")
            LocalityName("Los Angeles")
            OrganizationName("Acme")
            OrganizationalUnitName("dev")
            CommonName("alice")
        }
        let (leaf, _) = try certs.leaf(subject: subject, alternativeNames: [
            .dnsName("alice.example.com"), .rfc822Name("alice@example.com"),
            .uniformResourceIdentifier("spiffe://example.org/alice"), .dnsName("a.example.com"),
            .rfc822Name("a@example.com"),
        ])
        let ids = CertificateIdentities(certificate: leaf)
        XCTAssertEqual(ids.emails, ["alice@example.com", "a@example.com"])
        XCTAssertEqual(ids.dnsNames, ["alice.example.com", "a.example.com"])
        XCTAssertEqual(ids.uris, ["spiffe://example.org/alice"])
        XCTAssertEqual(ids.subject, "CN=alice,OU=dev,O=Acme,L=Los Angeles,ST=CA,C=US")
        XCTAssertNil(ids.subjectWithDomainComponents)
        XCTAssertEqual(ids.candidateNames, [
            "alice@example.com", "a@example.com", "alice.example.com", "a.example.com",
            "spiffe://example.org/alice", "CN=alice,OU=dev,O=Acme,L=Los Angeles,ST=CA,C=US",
        ])
    }

    func testSubjectFollowsPkixOrderNotTheCertificatesOrder() throws {
        // pkix fills a Name and prints its own order: CN before OU before O whatever the certificate says; several
        // values of one type become one RDN joined by +; the last CN wins; unknown attributes (e-mail) are left out.
        let subject = try DistinguishedName {
            CommonName("first")
            OrganizationalUnitName("b")
            OrganizationName("Acme")
            OrganizationalUnitName("a")
            EmailAddress("x@example.com")
            CommonName("bob")
        }
        let rdns = subject.map { rdn in rdn.map { (oid: $0.type.description, value: CertificateIdentities.goString($0.value)) } }
        XCTAssertEqual(CertificateIdentities.goSubjectString(rdns), "CN=bob,OU=b+OU=a,O=Acme")
        // ...and ldap's DN has every attribute, or none when one is unknown (the e-mail address).
        XCTAssertNil(DistinguishedNameValue(certificateRDNs: rdns))
    }

    func testDomainComponentsAreAppendedAsACandidateBeforeTheSubject() throws {
        let certs = try TestCertificates()
        let subject = try DistinguishedName {
            DomainComponent("org")
            DomainComponent("example")
            OrganizationName("Acme")
            CommonName("svc")
        }
        let ids = CertificateIdentities(certificate: try certs.leaf(subject: subject).0)
        XCTAssertEqual(ids.subject, "CN=svc,O=Acme")
        XCTAssertEqual(ids.subjectWithDomainComponents, "CN=svc,O=Acme,DC=org,DC=example")
        XCTAssertEqual(ids.candidateNames, ["CN=svc,O=Acme,DC=org,DC=example", "CN=svc,O=Acme"])
        // The DN comparison: RDNs last first (RFC 4514), DCs included.
        XCTAssertEqual(ids.matchesDistinguishedName("CN=svc, O=Acme, DC=example, DC=org"), .exact)
        XCTAssertEqual(ids.matchesDistinguishedName("cn=svc,o=Acme,dc=example,dc=org"), .exact)  // types ignore case
        XCTAssertEqual(ids.matchesDistinguishedName("DC=org,DC=example,O=Acme,CN=svc"), .reordered)
        XCTAssertNil(ids.matchesDistinguishedName("CN=svc,O=acme,DC=example,DC=org"))  // values do not
        XCTAssertNil(ids.matchesDistinguishedName("svc"))
    }

    func testEscapingAsGo() {
        XCTAssertEqual(CertificateIdentities.escape("a,b+c"), #"a\,b\+c"#)
        XCTAssertEqual(CertificateIdentities.escape("#lead trail "), ##"\#lead trail\ "##)
        XCTAssertEqual(CertificateIdentities.escape(" #x"), ##"\ #x"##)  // '#' only when first
        XCTAssertEqual(CertificateIdentities.escape("in#side \"q\" <x>;"), #"in#side \"q\" \<x\>\;"#)
        let rdns: [[(oid: String, value: String?)]] = [[(oid: "2.5.4.3", value: "Doe, John")], [(oid: "2.5.4.10", value: "A+B")]]
        XCTAssertEqual(CertificateIdentities.goSubjectString(rdns), #"CN=Doe\, John,O=A\+B"#)
    }

    func testParsingDistinguishedNamesAsLdapDoes() {
        XCTAssertEqual(DistinguishedNameValue(parsing: #"CN=Doe\, John,O=Acme"#)?.rdns.map { $0.map(\.value) },
                       [["Doe, John"], ["Acme"]])
        XCTAssertEqual(DistinguishedNameValue(parsing: #"CN=a\2Cb + OU=x ,O=y"#)?.rdns.map { $0.map(\.value) },
                       [["a,b", "x"], ["y"]])
        XCTAssertNil(DistinguishedNameValue(parsing: "CN=#0403"))  // BER: unsupported
        XCTAssertNil(DistinguishedNameValue(parsing: "alice"))
        XCTAssertEqual(DistinguishedNameValue(parsing: "OU=a+CN=b"), DistinguishedNameValue(parsing: "CN=b+OU=a"))
    }

    func testNoNamesAtAll() throws {
        let certs = try TestCertificates()
        let ids = CertificateIdentities(certificate: try certs.leaf(subject: DistinguishedName()).0)
        XCTAssertEqual(ids.candidateNames, [])
        XCTAssertEqual(ids.matchesDistinguishedName("CN=x"), nil)
    }
}
