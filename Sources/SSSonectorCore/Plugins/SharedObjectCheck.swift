import Glibc

/// Checks that a file is a whole ELF shared object before the dynamic loader maps it.
///
/// `dlopen` trusts the file: it maps every loadable segment the program headers name, and a
/// segment that reaches past the end of a truncated file is a mapping with no pages behind it,
/// so the first access (relocation, before `dlopen` returns) kills the process with SIGBUS.
/// No library offers this check without loading the file (libelf parses, but is one more
/// dependency for a dozen fields), so it reads the ELF header and program headers itself: the
/// fixed layout of the System V gABI, 64-bit little-endian as on the hosts this runs on.
enum SharedObjectCheck {
    /// nil when `path` looks loadable, else why not (one line, without the path).
    static func problem(_ path: String) -> String? {
        let fd: Int32
        let size: Int
        do {
            (fd, size) = try RegularFile.open(path)
        } catch {
            return error.description
        }
        defer { close(fd) }
        func bytes(_ offset: Int, _ count: Int) -> [UInt8]? {
            guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
            var out = [UInt8](repeating: 0, count: count)
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return n == count ? out : nil
        }
        guard let header = bytes(0, 64) else { return "not an ELF shared library (only \(size) bytes)" }
        guard header[0..<4].elementsEqual([0x7F, 0x45, 0x4C, 0x46]) else { return "not an ELF shared library (no ELF magic)" }
        guard header[4] == 2, header[5] == 1 else { return "not a 64-bit little-endian ELF file" }
        func u16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }
        func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }
        guard u16(header, 16) == 3 else { return "not a shared library (ELF type \(u16(header, 16)), expected ET_DYN)" }
        let phoff = u64(header, 32), shoff = u64(header, 40)
        let phentsize = u16(header, 54), phnum = u16(header, 56)
        let shentsize = u16(header, 58), shnum = u16(header, 60)
        guard phentsize >= 56, phnum > 0, phoff < UInt64(size),
              let table = bytes(Int(phoff), phentsize * phnum)
        else { return "truncated or malformed: the program header table is not inside the file (\(size) bytes)" }
        for k in 0..<phnum {
            let entry = Array(table[(k * phentsize)..<(k * phentsize + 56)])
            let type = UInt32(u16(entry, 0)) | UInt32(u16(entry, 2)) << 16
            let offset = u64(entry, 8), fileSize = u64(entry, 32)
            // PT_LOAD and PT_DYNAMIC are read through the mapping: they must lie in the file.
            guard type == 1 || type == 2 else { continue }
            let (end, overflow) = offset.addingReportingOverflow(fileSize)
            if overflow || end > UInt64(size) {
                return "truncated: a loadable segment ends at byte \(end), the file has \(size)"
            }
        }
        if shnum > 0 {
            let (end, overflow) = shoff.addingReportingOverflow(UInt64(shentsize * shnum))
            if overflow || end > UInt64(size) { return "truncated: the section header table ends past the file's \(size) bytes" }
        }
        return nil
    }
}
