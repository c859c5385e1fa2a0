import ConfigValues
import Foundation

/// Writes a stage project from the templates in `<sdk>/Plugins/templates/<language>/`: every
/// file, with `__NAME__` (the stage's name), `__TYPE__` (its Swift type prefix), `__SDK__`,
/// `__SSSONECTOR__`, `__DEPENDENCY__` and `__PACKAGE__` filled in, and `__NAME__`/`__TYPE__`
/// in file names too.
public struct StageScaffold {
    public let name: String
    public let language: String
    /// The SSSonector source tree (for the ABI header, the templates, a path dependency).
    public let sdk: String
    /// A git URL to name SSSonector by instead of `sdk` (Swift).
    public let sdkURL: String?
    /// The `sssonector` binary the project's test uses.
    public let sssonector: String

    public init(name: String, language: String, sdk: String, sdkURL: String?, sssonector: String) {
        self.name = name
        self.language = language
        self.sdk = sdk
        self.sdkURL = sdkURL
        self.sssonector = sssonector
    }

    /// The source tree this binary was compiled from (this file's path at build time, four
    /// folders up).
    public static let builtFromSourceTree: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Why a project cannot be written.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Writes the project into `destination` (which must not exist); returns the files written,
    /// relative to it.
    public func write(to destination: String) throws -> [String] {
        let templates = "\(sdk)/Plugins/templates/\(language)"
        let manager = FileManager.default
        guard manager.fileExists(atPath: "\(sdk)/Sources/StageABI/include/sssonector_stage.h"),
              let enumerator = manager.enumerator(atPath: templates)
        else {
            throw Failure(description: "\(sdk): not a SSSonector source tree (no Sources/StageABI/include/sssonector_stage.h or Plugins/templates/\(language)); name one with --sdk DIR")
        }
        guard !manager.fileExists(atPath: destination) else {
            throw Failure(description: "\(destination): already exists; choose another --out or NAME")
        }
        var written: [String] = []
        for case let relative as String in enumerator {
            var isDirectory: ObjCBool = false
            manager.fileExists(atPath: "\(templates)/\(relative)", isDirectory: &isDirectory)
            guard !isDirectory.boolValue else { continue }
            let text = try String(contentsOfFile: "\(templates)/\(relative)", encoding: .utf8)
            let target = "\(destination)/\(fill(relative))"
            try manager.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try fill(text).write(toFile: target, atomically: true, encoding: .utf8)
            written.append(fill(relative))
        }
        return written.sorted()
    }

    /// The stage's Swift type prefix: `rate_cap` → `RateCap`.
    var typeName: String {
        name.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The package identity SwiftPM gives SSSonector: the folder name for a path, the last URL
    /// component for a URL.
    var packageIdentity: String {
        let source = sdkURL.map { URL(string: $0)?.deletingPathExtension().lastPathComponent ?? $0 } ?? URL(fileURLWithPath: sdk).lastPathComponent
        return source.lowercased()
    }

    var dependency: String {
        if let sdkURL { return ".package(url: \(JSONValue.string(sdkURL).jsonText), branch: \"main\")" }
        return ".package(path: \(JSONValue.string(sdk).jsonText))"
    }

    func fill(_ text: String) -> String {
        text.replacingOccurrences(of: "__NAME__", with: name)
            .replacingOccurrences(of: "__TYPE__", with: typeName)
            .replacingOccurrences(of: "__SDK__", with: sdk)
            .replacingOccurrences(of: "__SSSONECTOR__", with: sssonector)
            .replacingOccurrences(of: "__DEPENDENCY__", with: dependency)
            .replacingOccurrences(of: "__PACKAGE__", with: packageIdentity)
    }
}
