import Foundation

/// Replays inputs through a fuzz target without libFuzzer: every file named, or every file in a
/// folder named, once. What the tests use to keep every input the fuzzer ever kept (and every
/// crash it found) passing.
enum FuzzReplay {
    static func run(_ target: (UnsafePointer<UInt8>?, Int) -> Int32, inputs: [String]) {
        var files: [String] = []
        for argument in inputs {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("\(argument): no such file or folder\n".utf8))
                exit(2)
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
                files += names.sorted().map { "\(argument)/\($0)" }
            } else {
                files.append(argument)
            }
        }
        for file in files {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            _ = data.withUnsafeBytes { target($0.bindMemory(to: UInt8.self).baseAddress, data.count) }
        }
        print("replayed \(files.count) inputs")
    }
}
