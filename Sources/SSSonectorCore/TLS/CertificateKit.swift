import Crypto
import Foundation
import SwiftASN1
import X509

/// `sssonector certs init`: a CA, a server certificate and a client certificate for a mutual
/// TLS tunnel. ECDSA P-256 keys, random 160-bit serials, subjectAltNames for every name (DNS or
/// IP), keys written with mode 0600. swift-certificates and swift-crypto; no openssl.
public enum CertificateKit {
    public struct Options: Sendable {
        public var directory: String
        /// DNS names or IP addresses for the server certificate.
        public var serverNames: [String]
        public var clientName: String
        public var validityDays: Int
        public var overwrite: Bool
        /// The validity period's start (tests pass a past date to make expired certificates).
        public var notBefore: Date

        public init(directory: String, serverNames: [String], clientName: String = "sssonector-client",
                    validityDays: Int = 825, overwrite: Bool = false, notBefore: Date = Date().addingTimeInterval(-300)) {
            self.directory = directory
            self.serverNames = serverNames.isEmpty ? ["localhost", "127.0.0.1", "::1"] : serverNames
            self.clientName = clientName
            self.validityDays = validityDays
            self.overwrite = overwrite
            self.notBefore = notBefore
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static let files = ["ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"]

    /// Writes the six files; returns their paths.
    @discardableResult
    public static func initialize(_ o: Options) throws -> [String] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: o.directory, withIntermediateDirectories: true)
        if !o.overwrite, let existing = files.first(where: { fm.fileExists(atPath: "\(o.directory)/\($0)") }) {
            throw Failure(description: "\(o.directory)/\(existing) exists (use --force to replace the set)")
        }
        let notAfter = o.notBefore.addingTimeInterval(TimeInterval(o.validityDays) * 86_400)
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("SSSonector")
            CommonName("SSSonector tunnel CA")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: o.notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(caKey.publicKey))
            },
            issuerPrivateKey: .init(caKey))
        let server = try leaf(commonName: o.serverNames[0], names: o.serverNames, usage: .serverAuth,
                              ca: ca, caKey: caKey, notBefore: o.notBefore, notAfter: notAfter)
        let client = try leaf(commonName: o.clientName, names: [o.clientName], usage: .clientAuth,
                              ca: ca, caKey: caKey, notBefore: o.notBefore, notAfter: notAfter)
        let outputs: [(String, String, Int16)] = [
            ("ca.pem", try ca.serializeAsPEM().pemString, 0o644), ("ca.key", caKey.pemRepresentation, 0o600),
            ("server.pem", try server.0.serializeAsPEM().pemString, 0o644), ("server.key", server.1.pemRepresentation, 0o600),
            ("client.pem", try client.0.serializeAsPEM().pemString, 0o644), ("client.key", client.1.pemRepresentation, 0o600),
        ]
        return try write(outputs, in: o.directory)
    }

    /// Issues a connector certificate (reverse tunnel, docs/pipeline-reference.md) signed by the
    /// CA in `directory`: `connector-NAME.pem` and `connector-NAME.key`, for client
    /// authentication, with NAME as its common name and DNS name: the identity a relay's
    /// `services.*.allow` lists. Returns the two paths.
    @discardableResult
    public static func issueConnector(name: String, directory: String, validityDays: Int = 825, overwrite: Bool = false,
                                      notBefore: Date = Date().addingTimeInterval(-300)) throws -> [String] {
        guard isConnectorName(name) else {
            throw Failure(description: "--connector \(name.debugDescription): expected a DNS-style name (letters, digits, '-', '.'; 1...253 characters)")
        }
        let fm = FileManager.default
        let caPath = "\(directory)/ca.pem", caKeyPath = "\(directory)/ca.key"
        let ca: Certificate
        let caKey: P256.Signing.PrivateKey
        do {
            ca = try Certificate(pemEncoded: try String(contentsOfFile: caPath, encoding: .utf8))
            caKey = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: caKeyPath, encoding: .utf8))
        } catch {
            throw Failure(description: "\(caPath), \(caKeyPath): cannot read the CA that signs connector certificates (\(error)); `certs init --out \(directory)` makes one")
        }
        let names = ["connector-\(name).pem", "connector-\(name).key"]
        if !overwrite, let existing = names.first(where: { fm.fileExists(atPath: "\(directory)/\($0)") }) {
            throw Failure(description: "\(directory)/\(existing) exists (use --force to replace it)")
        }
        let notAfter = notBefore.addingTimeInterval(TimeInterval(validityDays) * 86_400)
        let (certificate, key) = try leaf(commonName: name, names: [name], usage: .clientAuth, ca: ca, caKey: caKey,
                                          notBefore: notBefore, notAfter: notAfter)
        return try write([(names[0], try certificate.serializeAsPEM().pemString, 0o644), (names[1], key.pemRepresentation, 0o600)],
                         in: directory)
    }

    /// A connector name: what a DNS name may hold, so it is also a valid file name part.
    static func isConnectorName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 253 && !name.hasPrefix(".") && !name.hasPrefix("-")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }

    /// Writes `(file, text, mode)` entries into `directory`; returns their paths.
    private static func write(_ outputs: [(String, String, Int16)], in directory: String) throws -> [String] {
        let fm = FileManager.default
        var written: [String] = []
        for (name, text, mode) in outputs {
            let path = "\(directory)/\(name)"
            try? fm.removeItem(atPath: path)
            guard fm.createFile(atPath: path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: mode]) else {
                throw Failure(description: "cannot write \(path)")
            }
            written.append(path)
        }
        return written
    }

    private static func leaf(
        commonName: String, names: [String], usage: ExtendedKeyUsage.Usage, ca: Certificate,
        caKey: P256.Signing.PrivateKey, notBefore: Date, notAfter: Date
    ) throws -> (Certificate, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("SSSonector")
            CommonName(commonName)
        }
        let alternativeNames = SubjectAlternativeNames(names.map { name -> GeneralName in
            if let bytes = ipBytes(name) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))) }
            return .dnsName(name)
        })
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: ca.subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                alternativeNames
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: .init(caKey))
        return (certificate, key)
    }

    /// The bytes of an IPv4 or IPv6 literal, or nil for a DNS name.
    static func ipBytes(_ text: String) -> [UInt8]? {
        if let v4 = IPv4Literal(text) { return v4 }
        guard text.contains(":") else { return nil }
        var addr = in6_addr()
        guard inet_pton(AF_INET6, text, &addr) == 1 else { return nil }
        return withUnsafeBytes(of: addr) { Array($0) }
    }

    private static func IPv4Literal(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }
}
