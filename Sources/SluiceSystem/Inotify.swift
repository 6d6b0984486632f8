import Glibc

/// inotify(7) on directories. Watching directories, not files, keeps the watch count small:
/// a directory's watch also reports writes to every file in it. Non-blocking; owned by one thread.
/// Also used by SluiceContainers' watchers (pod log dir, static container file, containerd's task dir).
public final class Inotify {
    public struct Event {
        public var wd: Int32
        public var mask: UInt32
        public var name: String

        public func has<T: BinaryInteger>(_ bit: T) -> Bool { mask & UInt32(truncatingIfNeeded: bit) != 0 }
    }

    public let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// What input_file watches: creations, writes, renames, deletions and the directory's own end.
    public static let dirMask: UInt32 = UInt32(IN_CREATE) | UInt32(IN_MODIFY) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM)
        | UInt32(IN_DELETE) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ATTRIB) | UInt32(IN_CLOSE_WRITE)
        | UInt32(IN_ONLYDIR)

    public init?() {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 { return nil }
    }

    deinit { close(fd) }

    public func addWatch(_ dir: String, mask: UInt32 = Inotify.dirMask) -> Result<Int32, Errno> {
        let wd = inotify_add_watch(fd, dir, mask)
        if wd < 0 { return .failure(Errno(errno)) }
        return .success(wd)
    }

    public func removeWatch(_ wd: Int32) {
        inotify_rm_watch(fd, wd)
    }

    /// Reads every queued event without blocking.
    public func readEvents() -> [Event] {
        var out: [Event] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            buffer.withUnsafeBytes { raw in
                var off = 0
                while off + 16 <= n {
                    let wd = raw.loadUnaligned(fromByteOffset: off, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self)
                    let len = Int(raw.loadUnaligned(fromByteOffset: off + 12, as: UInt32.self))
                    var name = ""
                    if len > 0 {
                        let nameBytes = raw[(off + 16)..<(off + 16 + len)]
                        let end = nameBytes.firstIndex(of: 0) ?? nameBytes.endIndex
                        name = String(decoding: raw[(off + 16)..<end], as: UTF8.self)
                    }
                    out.append(Event(wd: wd, mask: mask, name: name))
                    off += 16 + len
                }
            }
        }
        return out
    }
}
