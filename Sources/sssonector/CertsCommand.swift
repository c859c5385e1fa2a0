import ArgumentParser
import Foundation
import SSSonectorCore

/// `sssonector certs init --out DIR [--name HOST]...`.
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "Make certificates for a mutual TLS tunnel.", subcommands: [Init.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a CA, a server and a client certificate with ECDSA P-256 keys (keys mode 0600).")

        @Option(help: "Folder for ca.pem, ca.key, server.pem, server.key, client.pem, client.key.")
        var out: String

        @Option(name: .customLong("name"), help: "A DNS name or IP address of the server (repeatable; default localhost, 127.0.0.1, ::1).")
        var names: [String] = []

        @Option(help: "The client certificate's common name and DNS name.")
        var clientName = "sssonector-client"

        @Option(help: "Also issue connector-NAME.pem/.key: a client certificate whose identity (common name and DNS name) is NAME, one per tunnel client or connector host, signed by the CA in --out (made first when there is none).")
        var connector: String?

        @Option(help: "Validity in days.")
        var days = 825

        @Flag(help: "Replace an existing set.")
        var force = false

        func validate() throws {
            guard (1...36500).contains(days) else { throw ValidationError("--days must be 1...36500") }
            for name in names where name.isEmpty || name.contains(" ") {
                throw ValidationError("--name \"\(name)\": expected a DNS name or an IP address")
            }
        }

        func run() throws {
            do {
                var files: [String] = []
                let haveCA = FileManager.default.fileExists(atPath: "\(out)/ca.pem") || FileManager.default.fileExists(atPath: "\(out)/ca.key")
                if connector == nil || !haveCA {
                    files += try CertificateKit.initialize(.init(directory: out, serverNames: names, clientName: clientName,
                                                                 validityDays: days, overwrite: force))
                }
                if let connector {
                    files += try CertificateKit.issueConnector(name: connector, directory: out, validityDays: days, overwrite: force)
                }
                files.forEach { print($0) }
            } catch let failure as CertificateKit.Failure {
                printError(failure.description)
                throw SSSonectorCommand.invalidInput
            }
        }
    }
}
