import Locking
import Foundation
import Logging
import StageABI
import Synchronization

/// A stage library loaded for the life of the process: its module description and its
/// validated stage types. The entry symbol is called once per library file; later loads of the
/// same file return the same object.
public final class PluginLibrary: Sendable {
    /// The file that was loaded.
    public let path: String
    public let moduleName: String
    public let moduleVersion: String
    /// The ABI version the library was compiled against.
    public let abiMajor: UInt16
    public let abiMinor: UInt16
    public let types: [StageType]

    init(path: String, moduleName: String, moduleVersion: String, abiMajor: UInt16,
         abiMinor: UInt16, types: [StageType]) {
        self.path = path
        self.moduleName = moduleName
        self.moduleVersion = moduleVersion
        self.abiMajor = abiMajor
        self.abiMinor = abiMinor
        self.types = types
    }

    /// The type named `name`, or the only type when `name` is nil.
    public func type(named name: String?) throws(PluginError) -> StageType {
        if let name {
            guard let t = types.first(where: { $0.name == name }) else {
                throw PluginError(.unknownType, library: path,
                                  "has no stage type '\(name)' (it has: \(types.map(\.name).joined(separator: ", ")))")
            }
            return t
        }
        guard types.count == 1, let only = types.first else {
            throw PluginError(.unknownType, library: path,
                              "holds \(types.count) stage types (\(types.map(\.name).joined(separator: ", "))); name one with \"type\"")
        }
        return only
    }

    /// What calling a library's entry found: the library when usable, and every problem.
    struct Inspection: Sendable {
        let path: String
        let library: PluginLibrary?
        let problems: [DescriptorProblem]
    }

    /// One inspection per library file: the entry symbol is called once per process.
    private static let cache = Locked<[String: Inspection]>([:])

    /// Loads the library `plugin` names (short name or path, docs/pipeline-reference.md), calls its entry once,
    /// and validates its descriptor. Throws a one-line `PluginError` naming the file.
    public static func load(
        _ plugin: String, relativeTo baseDirectory: String? = nil,
        searchPath: PluginSearchPath = .standard(pipelineDirectory: nil),
        logger: Logger = Logger(label: "sssonector.plugins")
    ) throws(PluginError) -> PluginLibrary {
        let inspection = try inspect(plugin, relativeTo: baseDirectory, searchPath: searchPath)
        if let library = inspection.library, inspection.problems.isEmpty {
            logger.debug("loaded stage library", metadata: [
                "file": "\(library.path)", "module": "\(library.moduleName)",
                "abi": "\(library.abiMajor).\(library.abiMinor)",
            ])
            return library
        }
        let first = inspection.problems.first ?? DescriptorProblem(.malformedDescriptor, "unusable module descriptor")
        throw PluginError(first.kind, library: inspection.path, first.message)
    }

    /// Opens the library and inspects it (cached). Throws only when it cannot be opened.
    static func inspect(
        _ plugin: String, relativeTo baseDirectory: String?, searchPath: PluginSearchPath
    ) throws(PluginError) -> Inspection {
        let handle: DynamicLibrary.Handle
        switch searchPath.resolve(plugin, relativeTo: baseDirectory) {
        case .file(let path):
            let key = canonical(path)
            if let known = cache.withLock({ $0[key] }) { return known }
            handle = try DynamicLibrary.open(path: key)
        case .missingFile(let path):
            throw PluginError(.notFound, library: path, "no such file")
        case .systemName(let name):
            handle = try DynamicLibrary.open(systemName: name, searched: searchPath.directories)
        }
        let key = canonical(handle.filename)
        return cache.withLock { cache in
            if let known = cache[key] { return known }
            let inspection = callEntry(handle, path: key)
            cache[key] = inspection
            return inspection
        }
    }

    private static func canonical(_ path: String) -> String {
        guard let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(cString: real)
    }

    /// Host services for entry calls: logging and clocks, no metrics owner, no connections.
    private static let entryServices = HostServices(
        logger: Logger(label: "sssonector.plugins"), clock: SystemClock(),
        metrics: MetricsRegistry(), metricLabels: [], poster: nil)

    private static func callEntry(_ handle: DynamicLibrary.Handle, path: String) -> Inspection {
        func failed(_ kind: PluginError.Kind, _ message: String) -> Inspection {
            Inspection(path: path, library: nil, problems: [DescriptorProblem(kind, message)])
        }
        guard let symbol = DynamicLibrary.symbol(SSS_ENTRY_SYMBOL, in: handle) else {
            return failed(.noEntrySymbol, "does not export \(SSS_ENTRY_SYMBOL) (is it a SSSonector stage library, with the symbol visible?)")
        }
        let entry = unsafeBitCast(symbol, to: sss_entry_fn.self)
        var module: UnsafePointer<sss_module>? = nil
        var errorText = [CChar](repeating: 0, count: 512)
        let status = errorText.withUnsafeMutableBufferPointer { buf in
            entry(entryServices.api, &module, buf.baseAddress, UInt64(buf.count))
        }
        let text = String(nulTerminated: errorText)
        guard status == SSS_OK else {
            let why = text.isEmpty ? "status \(status)" : text
            if status == SSS_E_ABI {
                return failed(.incompatibleABI, "refused this host's stage ABI \(SSS_ABI_MAJOR).\(SSS_ABI_MINOR): \(why)")
            }
            return failed(.entryFailed, "\(SSS_ENTRY_SYMBOL) failed: \(why)")
        }
        let (library, problems) = describe(module, path: path)
        return Inspection(path: path, library: library, problems: problems)
    }

    /// Validates a module descriptor; returns the library (when usable) and every problem.
    static func describe(_ module: UnsafePointer<sss_module>?, path: String) -> (PluginLibrary?, [DescriptorProblem]) {
        guard let module else { return (nil, [.init(.malformedDescriptor, "\(SSS_ENTRY_SYMBOL) returned SSS_OK but no module")]) }
        let head = module.pointee
        if UInt32(head.abi_major) != SSS_ABI_MAJOR {
            return (nil, [.init(.incompatibleABI, "built for stage ABI \(head.abi_major).\(head.abi_minor); this host speaks \(SSS_ABI_MAJOR).\(SSS_ABI_MINOR) (major versions must match; rebuild the plugin)")])
        }
        let minimum = MemoryLayout<sss_module>.size
        if Int(head.struct_size) < minimum {
            return (nil, [.init(.malformedDescriptor, "module descriptor is \(head.struct_size) bytes; ABI 1.0 needs at least \(minimum)")])
        }
        // 1.0's descriptor ends after on_control; later minors append optional hooks, which a
        // shorter descriptor leaves NULL (StageType.read zero-fills).
        let typeMinimum = MemoryLayout<sss_stage_type>.offset(of: \.on_control)! + MemoryLayout<UnsafeRawPointer>.size
        guard let types = head.types, head.type_count > 0 else {
            return (nil, [.init(.malformedDescriptor, "module declares no stage types")])
        }
        if Int(head.type_stride) < typeMinimum {
            return (nil, [.init(.malformedDescriptor, "stage type stride is \(head.type_stride) bytes; ABI 1.0 needs at least \(typeMinimum)")])
        }
        var problems: [DescriptorProblem] = []
        var parsed: [StageType] = []
        let base = UnsafeRawPointer(types)
        for i in 0..<Int(head.type_count) {
            let (type, found) = StageType.read(base + i * Int(head.type_stride), stride: Int(head.type_stride),
                                               library: path, abiMinor: head.abi_minor,
                                               hostCaps: HostServices.fullCapabilities)
            problems += found
            if let type {
                if parsed.contains(where: { $0.name == type.name }) {
                    problems.append(.init(.malformedDescriptor, "two stage types are named '\(type.name)'"))
                } else {
                    parsed.append(type)
                }
            }
        }
        let library = PluginLibrary(
            path: path,
            moduleName: head.module_name.map { String(cString: $0) } ?? "(unnamed)",
            moduleVersion: head.module_version.map { String(cString: $0) } ?? "(unversioned)",
            abiMajor: head.abi_major, abiMinor: head.abi_minor, types: parsed)
        return (library, problems)
    }
}

/// One thing wrong with a module descriptor.
struct DescriptorProblem: Sendable {
    let kind: PluginError.Kind
    let message: String
    init(_ kind: PluginError.Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
