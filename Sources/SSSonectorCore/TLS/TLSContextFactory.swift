import ConfigValues
import Foundation
import NIOSSL
import X509

/// Builds swift-nio-ssl contexts from a pipeline's `tls` blocks, checking what an operator
/// gets wrong (a missing or unreadable file, a key that does not match its certificate, an
/// expired certificate) so `validate` reports it with the JSON path.
enum TLSContextFactory {
    /// The listener's context. `path` is the JSON path of the `tls` object.
    static func server(_ s: ServerTLSSettings, path: String) throws(ConfigError) -> NIOSSLContext {
        let chain = try certificates(s.certificate, path: "\(path).cert")
        let key = try privateKey(s.key, path: "\(path).key")
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                           privateKey: .privateKey(key))
        tls.minimumTLSVersion = s.minimumVersion == "1.3" ? .tlsv13 : .tlsv12
        if let ca = s.clientCA {
            tls.trustRoots = .certificates(try certificates(ca, path: "\(path).client_ca", mustBeAuthorities: true))
            tls.certificateVerification = .noHostnameVerification  // clients are not named hosts
        }
        return try context(tls, path: path)
    }

    /// An upstream's context.
    static func client(_ c: ClientTLSSettings, path: String, minimumVersion: TLSVersion = .tlsv12) throws(ConfigError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = minimumVersion
        tls.certificateVerification = .fullVerification
        if let ca = c.ca { tls.trustRoots = .certificates(try certificates(ca, path: "\(path).ca")) }
        if let cert = c.certificate, let key = c.key {
            tls.certificateChain = try certificates(cert, path: "\(path).cert").map { .certificate($0) }
            tls.privateKey = .privateKey(try privateKey(key, path: "\(path).key"))
        }
        return try context(tls, path: path)
    }

    private static func context(_ tls: TLSConfiguration, path: String) throws(ConfigError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw ConfigError(path: path, "the certificate and key do not work together: \(error)")
        }
    }

    /// Reads a PEM certificate chain; refuses expired or not-yet-valid certificates and, with
    /// `mustBeAuthorities` (a client CA), any certificate that is not a CA: trusting a leaf as a
    /// root is almost always a mixed-up file, and then no client would ever be accepted.
    static func certificates(_ file: String, path: String, mustBeAuthorities: Bool = false) throws(ConfigError) -> [NIOSSLCertificate] {
        let pem: String
        do {
            pem = try RegularFile.readText(file)
        } catch {
            throw ConfigError(path: path, "cannot read \(file): \(error)")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
        } catch {
            throw ConfigError(path: path, "\(file) holds no PEM certificate: \(error)")
        }
        guard !chain.isEmpty else { throw ConfigError(path: path, "\(file) holds no PEM certificate") }
        let now = Date()
        for certificate in chain {
            guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { continue }
            if parsed.notValidAfter < now {
                throw ConfigError(path: path, "\(file): the certificate for \(parsed.subject) expired on \(parsed.notValidAfter)")
            }
            if parsed.notValidBefore > now {
                throw ConfigError(path: path, "\(file): the certificate for \(parsed.subject) is not valid before \(parsed.notValidBefore)")
            }
            if mustBeAuthorities {
                let constraints = try? parsed.extensions.basicConstraints
                guard case .isCertificateAuthority? = constraints else {
                    throw ConfigError(path: path, "\(file): the certificate for \(parsed.subject) is not a CA (basicConstraints CA:TRUE expected); name the CA that signed the client certificates")
                }
            }
        }
        return chain
    }

    static func privateKey(_ file: String, path: String) throws(ConfigError) -> NIOSSLPrivateKey {
        let pem: [UInt8]
        do {
            pem = try RegularFile.read(file)
        } catch {
            throw ConfigError(path: path, "cannot read \(file): \(error)")
        }
        do {
            return try NIOSSLPrivateKey(bytes: pem, format: .pem)
        } catch {
            throw ConfigError(path: path, "\(file) holds no PEM private key: \(error)")
        }
    }
}

/// A pipeline's TLS contexts, built once per (re)load: new connections use them; open ones
/// keep the ones they started with.
struct PipelineTLS: Sendable {
    /// For the listener, when `listen.tls` is set.
    var server: NIOSSLContext?
    /// Whether clients must present a certificate (mutual TLS).
    var requiresClientCertificate = false
    /// By upstream name, for upstreams with `tls`.
    var upstreams: [String: UpstreamTLS] = [:]
    /// A connector's context for dialing its relay (`listen.reverse.tls`, TLS 1.3 only).
    var reverse: UpstreamTLS?

    struct UpstreamTLS: Sendable {
        let context: NIOSSLContext
        /// Checked against the certificate and sent as SNI; nil: chain verification only.
        let serverName: String?
    }

    /// The name to verify: `server_name`, else the host when it is a name (an IP: chain only).
    private static func serverName(_ c: ClientTLSSettings, host: String) -> String? {
        c.serverName ?? (CertificateKit.ipBytes(host) != nil ? nil : host)
    }

    /// Builds every context of `config`; errors carry the JSON path.
    static func build(_ config: PipelineConfig) -> (PipelineTLS, [ConfigError]) {
        var tls = PipelineTLS()
        var errors: [ConfigError] = []
        if let s = config.listen.tls {
            do {
                tls.server = try TLSContextFactory.server(s, path: "listen.tls")
                tls.requiresClientCertificate = s.clientCA != nil
            } catch {
                errors.append(error)
            }
        }
        if let reverse = config.listen.reverse {
            do {
                let context = try TLSContextFactory.client(reverse.tls, path: "listen.reverse.tls", minimumVersion: .tlsv13)
                tls.reverse = UpstreamTLS(context: context, serverName: serverName(reverse.tls, host: reverse.relay.host))
            } catch {
                errors.append(error)
            }
        }
        for (i, upstream) in config.upstreams.enumerated() {
            guard let c = upstream.tls else { continue }
            do {
                let context = try TLSContextFactory.client(c, path: "upstreams[\(i)].tls")
                tls.upstreams[upstream.name] = UpstreamTLS(context: context, serverName: serverName(c, host: upstream.address.host))
            } catch {
                errors.append(error)
            }
        }
        return (tls, errors)
    }
}
