import NIOSSL
import X509

/// The verified client certificate's identity, as stages see it (`sss_conn.peer_identity`) and
/// the log shows it: `CN=client,O=SSSonector; DNS:client.example, IP:10.0.0.7`.
enum PeerIdentity {
    static func describe(_ certificate: NIOSSLCertificate) -> String {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else {
            return "(unparseable certificate)"
        }
        var names: [String] = []
        if let sans = try? parsed.extensions.subjectAlternativeNames {
            for name in sans {
                switch name {
                case .dnsName(let dns): names.append("DNS:\(dns)")
                case .ipAddress(let bytes): names.append("IP:\(formatIP(Array(bytes.bytes)))")
                case .uniformResourceIdentifier(let uri): names.append("URI:\(uri)")
                case .rfc822Name(let mail): names.append("email:\(mail)")
                default: break
                }
            }
        }
        let subject = "\(parsed.subject)"
        return names.isEmpty ? subject : "\(subject); \(names.joined(separator: ", "))"
    }

    /// The names a relay's `allow` lists match (docs/reverse-tunnel.md): the subject's common
    /// names and the DNS and URI subject alternative names.
    static func names(_ certificate: NIOSSLCertificate) -> [String] {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return [] }
        var names: [String] = []
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                names.append("\(attribute.value)")
            }
        }
        if let sans = try? parsed.extensions.subjectAlternativeNames {
            for name in sans {
                switch name {
                case .dnsName(let dns): names.append(dns)
                case .uniformResourceIdentifier(let uri): names.append(uri)
                default: break
                }
            }
        }
        return names
    }

    static func formatIP(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: bytes.count, by: 2)
            .map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[min($0 + 1, bytes.count - 1)]), radix: 16) }
            .joined(separator: ":")
    }
}
