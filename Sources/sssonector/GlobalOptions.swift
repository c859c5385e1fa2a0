import ArgumentParser
import Logging
import SSSonectorCore

/// Options every running subcommand takes (docs/operations.md, "Running").
struct GlobalOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "text or json.")
    var logFormat: LogFormat = .text

    @Option(help: "Event loops (default: the CPUs this process may use).")
    var threads: Int?

    @Option(help: "Which code moves the bytes of pipelines that do not set connection.data_path: auto (the default: epoll where the pipeline allows it, else nio), nio (SwiftNIO channels for every pipeline), or epoll (plain TCP only; an error for others).")
    var dataPath: DataPathChoice = .hostDefault

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    func validate() throws {
        if let threads, threads < 1 || threads > 1024 {
            throw ValidationError("--threads must be 1...1024, got \(threads)")
        }
    }

    /// Bootstraps swift-log once and returns the host's logger.
    func makeLogger() -> Logger {
        let level = logLevel
        switch logFormat {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        }
        var logger = Logger(label: "sssonector")
        logger.logLevel = level
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension DataPathChoice: ExpressibleByArgument {}
