import Glibc
import SluiceSystem

/// The acknowledged position of every tracked file, written in place the moment it moves: one
/// fixed-size slot per file in `<pipeline>.pos` beside the checkpoint file, updated with one
/// `pwrite` per acknowledgement, without fsync. A killed process loses nothing that reached the
/// page cache, so after `kill -9` a restart resumes at the last acknowledged batch, not at the
/// last 200 ms persist. The checkpoint committer's timer makes it durable (`fdatasync`) for power
/// loss; a slot torn by a power loss fails its checksum and the JSON checkpoint is used instead.
///
/// Slot (512 bytes, little-endian): magic u32, flags u32 (1: live), dev u64, inode u64, offset i64,
/// signature hash u64, signature length u32, path length u32, generation u64, path bytes (at most
/// 448; longer paths are left out and come from the JSON file), checksum u64 (FNV-1a of the rest)
/// in the last 8 bytes. `@unchecked Sendable`: not thread-safe itself; the checkpoint table owns
/// it and calls it only under its lock.
final class PositionJournal: @unchecked Sendable {
    static let slotSize = 512
    static let pathCapacity = 448
    static let magic: UInt32 = 0x3150_4C53  // "SLP1"

    struct Slot: Equatable {
        var identity: FileIdentity
        var offset: Int64
        var signature: FileSignature
        var path: String
        var generation: UInt64
    }

    let path: String
    private var fd: Int32
    private var slots: [FileIdentity: Int] = [:]
    private var free: [Int] = []
    private var capacity = 0
    private var generation: UInt64 = 0
    private var buffer = [UInt8](repeating: 0, count: PositionJournal.slotSize)
    /// Written since the last `sync`.
    private var unsynced = false
    /// Set after a write failed: the journal is removed and no longer used (the JSON file alone
    /// then holds the positions, as slightly older values, never newer ones).
    private(set) var failed: Errno?

    /// Opens (creating) the journal; `readOnly` opens an existing one only to `load` it (`sluice
    /// explain` beside a running daemon).
    init(path: String, readOnly: Bool = false) throws(PathError) {
        self.path = path
        if readOnly {
            fd = open(path, O_RDONLY | O_CLOEXEC)
        } else {
            if let slash = path.lastIndex(of: "/"), case .failure(let e) = Sys.makeDirectories(String(path[..<slash])) { throw e }
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        }
        if fd < 0 { throw PathError(path: path, errno: Errno(errno)) }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Reads every valid live slot (the newest generation of each identity) and takes over the
    /// file's layout: those slots stay where they are, the others are free.
    func load() -> [Slot] {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return [] }
        let n = Int(st.st_size) / Self.slotSize
        var found: [FileIdentity: (slot: Slot, index: Int)] = [:]
        var stale: [Int] = []
        for i in 0..<n {
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, Self.slotSize, off_t(i * Self.slotSize)) }
            guard got == Self.slotSize, let s = Self.decode(buffer) else { stale.append(i); continue }
            generation = max(generation, s.generation)
            if let prev = found[s.identity] {
                if prev.slot.generation >= s.generation { stale.append(i); continue }
                stale.append(prev.index)
            }
            found[s.identity] = (s, i)
        }
        capacity = n
        slots = found.mapValues(\.index)
        free = stale.sorted(by: >)
        return found.values.map(\.slot)
    }

    /// Records `offset` (and identity, signature, path) for a file.
    func write(_ id: FileIdentity, offset: Int64, signature: FileSignature, path: String) {
        guard failed == nil else { return }
        let index: Int
        if let i = slots[id] {
            index = i
        } else {
            guard let i = allocate() else { return }
            index = i
            slots[id] = i
        }
        generation += 1
        Self.encode(Slot(identity: id, offset: offset, signature: signature, path: path, generation: generation), into: &buffer)
        put(index)
    }

    /// Frees the slot of a file no longer tracked.
    func remove(_ id: FileIdentity) {
        guard failed == nil, let i = slots.removeValue(forKey: id) else { return }
        for k in buffer.indices { buffer[k] = 0 }
        put(i)
        free.append(i)
    }

    /// Makes what was written durable (the committer's timer); nothing to do if nothing was.
    func sync() {
        guard failed == nil, unsynced else { return }
        unsynced = false
        fdatasync(fd)
    }

    private func allocate() -> Int? {
        if let i = free.popLast() { return i }
        // Grow by 64 zeroed slots, so later writes never need new blocks.
        let grow = 64
        let zeros = [UInt8](repeating: 0, count: grow * Self.slotSize)
        let ok = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(capacity * Self.slotSize)) } == zeros.count
        guard ok else {
            fail(Errno(errno))
            return nil
        }
        let first = capacity
        capacity += grow
        free.append(contentsOf: (first + 1..<capacity).reversed())
        return first
    }

    private func put(_ index: Int) {
        unsynced = true
        let n = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress!, Self.slotSize, off_t(index * Self.slotSize)) }
        if n != Self.slotSize { fail(Errno(n < 0 ? errno : EIO)) }
    }

    private func fail(_ e: Errno) {
        failed = e
        // Stale slots must not override newer JSON positions after a restart.
        unlink(path)
    }

    static func encode(_ s: Slot, into b: inout [UInt8]) {
        for k in b.indices { b[k] = 0 }
        let pathBytes = Array(s.path.utf8)
        let storePath = pathBytes.count <= pathCapacity
        b.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: s.identity.dev.littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: s.identity.inode.littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: s.offset.littleEndian, toByteOffset: 24, as: Int64.self)
            raw.storeBytes(of: s.signature.hash.littleEndian, toByteOffset: 32, as: UInt64.self)
            raw.storeBytes(of: UInt32(s.signature.length).littleEndian, toByteOffset: 40, as: UInt32.self)
            raw.storeBytes(of: UInt32(storePath ? pathBytes.count : 0).littleEndian, toByteOffset: 44, as: UInt32.self)
            raw.storeBytes(of: s.generation.littleEndian, toByteOffset: 48, as: UInt64.self)
            if storePath {
                for (k, c) in pathBytes.enumerated() { raw[56 + k] = c }
            }
            let sum = FNV1a.hash(UnsafeRawBufferPointer(rebasing: raw[0..<(slotSize - 8)]))
            raw.storeBytes(of: sum.littleEndian, toByteOffset: slotSize - 8, as: UInt64.self)
        }
    }

    static func decode(_ b: [UInt8]) -> Slot? {
        b.withUnsafeBytes { raw -> Slot? in
            guard UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == magic,
                  UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) == 1 else { return nil }
            let sum = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: slotSize - 8, as: UInt64.self))
            guard sum == FNV1a.hash(UnsafeRawBufferPointer(rebasing: raw[0..<(slotSize - 8)])) else { return nil }
            let pathLength = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 44, as: UInt32.self)))
            guard pathLength <= pathCapacity else { return nil }
            let sigLength = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 40, as: UInt32.self)))
            return Slot(
                identity: FileIdentity(dev: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                                       inode: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))),
                offset: Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 24, as: Int64.self)),
                signature: FileSignature(hash: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self)), length: sigLength),
                path: String(decoding: UnsafeRawBufferPointer(rebasing: raw[56..<(56 + pathLength)]), as: UTF8.self),
                generation: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 48, as: UInt64.self)))
        }
    }
}
