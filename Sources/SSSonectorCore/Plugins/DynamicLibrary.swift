import Locking
import CLTDL
import Foundation
import Synchronization

/// Opens shared libraries through GNU libltdl, the one place in the process that does.
///
/// - Every `lt_*` call runs under one lock: libltdl is not thread-safe and its last error is a
///   process-wide value cleared on read.
/// - Libraries are opened with the `ext`, `local` and `resident` hints and never closed:
///   unloading a library with Swift code in it crashes the runtime later, and a stage may
///   have handed out pointers.
/// - Before anything maps a file, `SharedObjectCheck` makes sure it is a regular file holding a
///   whole ELF shared object (a FIFO blocks `open` forever; a truncated file is a SIGBUS).
/// - Before libltdl opens a file, `dlopen(RTLD_NOW | RTLD_LOCAL)` resolves every symbol, so a
///   library with a missing dependency or an undefined symbol is refused at load time with
///   the loader's real message (libltdl reports only "file not found"), instead of exiting the
///   process at its first call.
enum DynamicLibrary {
    private static let lock = Locked<Bool>(false)  // the value: lt_dlinit has run

    /// A library opened for the life of the process.
    struct Handle: @unchecked Sendable {  // lt_dlhandle is an opaque, immutable token
        let raw: lt_dlhandle
        /// The file libltdl actually opened.
        let filename: String
    }

    /// Opens `path` (an existing file) or, with `systemName`, a bare `libNAME` searched in
    /// libltdl's paths. Throws a one-line `PluginError`.
    static func open(path: String) throws(PluginError) -> Handle {
        // A FIFO would block the open forever, a truncated file would crash the process.
        if let problem = SharedObjectCheck.problem(path) {
            throw PluginError(.loadFailed, library: path, "cannot load: \(problem)")
        }
        return try lock.withLock { initialized throws(PluginError) in
            try initialize(&initialized, library: path)
            if let failure = probe(path) {
                throw PluginError(.loadFailed, library: path, "cannot load: \(failure)")
            }
            return try openLocked(path, library: path)
        }
    }

    /// Opens `libNAME` from the system library path (LTDL_LIBRARY_PATH, LD_LIBRARY_PATH, ld.so).
    static func open(systemName name: String, searched: [String]) throws(PluginError) -> Handle {
        try lock.withLock { initialized throws(PluginError) in
            try initialize(&initialized, library: name)
            let handle: Handle
            do {
                handle = try openLocked(name, library: name)
            } catch {
                let places = (searched + ["the system library path"]).joined(separator: ", ")
                throw PluginError(.notFound, library: name, "no \(name).so found in \(places)")
            }
            if let failure = probe(handle.filename) {
                throw PluginError(.loadFailed, library: handle.filename, "cannot load: \(failure)")
            }
            return handle
        }
    }

    /// Looks up `symbol` in an open library.
    static func symbol(_ symbol: String, in handle: Handle) -> UnsafeMutableRawPointer? {
        lock.withLock { _ in lt_dlsym(handle.raw, symbol) }
    }

    private static func initialize(_ initialized: inout Bool, library: String) throws(PluginError) {
        guard !initialized else { return }
        guard lt_dlinit() == 0 else {
            throw PluginError(.loadFailed, library: library, "lt_dlinit failed: \(lastError())")
        }
        initialized = true
    }

    private static func openLocked(_ name: String, library: String) throws(PluginError) -> Handle {
        var advise: lt_dladvise? = nil
        guard lt_dladvise_init(&advise) == 0 else {
            throw PluginError(.loadFailed, library: library, "lt_dladvise_init: \(lastError())")
        }
        defer { lt_dladvise_destroy(&advise) }
        lt_dladvise_ext(&advise)
        lt_dladvise_local(&advise)
        lt_dladvise_resident(&advise)
        guard let raw = lt_dlopenadvise(name, advise) else {
            let reason = lastError()
            throw PluginError(.loadFailed, library: library, "cannot load: \(reason)")
        }
        // The resident hint is advice; make it binding so nothing ever unloads the library.
        lt_dlmakeresident(raw)
        let filename = lt_dlgetinfo(raw)?.pointee.filename.map { String(cString: $0) } ?? name
        return Handle(raw: raw, filename: filename)
    }

    /// Loads `path` with every symbol resolved now; returns the dynamic loader's error, if any.
    /// The handle stays open on success (the library is resident anyway).
    private static func probe(_ path: String) -> String? {
        if dlopen(path, RTLD_NOW | RTLD_LOCAL) != nil { return nil }
        return dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }

    private static func lastError() -> String {
        lt_dlerror().map { String(cString: $0) } ?? "unknown libltdl error"
    }
}
