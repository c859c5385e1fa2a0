import Glibc

/// Reads the files an operator names (pipelines, certificates, keys, plugins) without ever
/// blocking on one that is not a regular file: opening a FIFO for reading waits for a writer,
/// forever, and with the host's signals blocked until then not even SIGTERM ends the wait. The
/// file is opened non-blocking and checked with `fstat` before a byte is read.
enum RegularFile {
    /// Why a file cannot be read; `description` is the reason alone (the caller names the file).
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Opens `path` for reading if it is a regular file; the descriptor and its size.
    static func open(_ path: String) throws(Failure) -> (fd: Int32, size: Int) {
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: reason)
        }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG else {
            close(fd)
            throw Failure(description: "not a regular file (it is \(describe(kind)))")
        }
        return (fd, Int(info.st_size))
    }

    /// The whole content of `path`, refusing files larger than `limit` bytes.
    static func read(_ path: String, limit: Int = 16 << 20) throws(Failure) -> [UInt8] {
        let (fd, size) = try open(path)
        defer { close(fd) }
        guard size <= limit else { throw Failure(description: "larger than \(limit) bytes") }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }  // the file shrank while we read: keep what is there
            done += n
        }
        return Array(bytes[..<done])
    }

    /// The whole content of `path` as UTF-8 text (invalid sequences repaired).
    static func readText(_ path: String, limit: Int = 16 << 20) throws(Failure) -> String {
        String(decoding: try read(path, limit: limit), as: UTF8.self)
    }

    private static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFIFO: "a FIFO"
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a file"
        }
    }
}
