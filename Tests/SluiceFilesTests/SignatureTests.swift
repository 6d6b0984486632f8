import Glibc
@testable import SluiceFiles
import SluiceSystem
import SluiceTesting
import Testing

/// A reader's signature grows with what it read, so a file truncated and rewritten between a read
/// and the next check is noticed.
@Suite("File signature") struct SignatureTests {
    /// A reader of `path` (written with `content`) from `offset`, with an empty signature, its
    /// descriptor open (closed with the reader).
    func reader(of path: String, content: String, offset: Int64) throws -> FileReader {
        writeFile(path, content)
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        let r = FileReader(id: FileIdentity(dev: 1, inode: 2), path: path, offset: offset, signature: .empty, tags: [], now: 0)
        r.fd = fd
        return r
    }

    /// Found by the input_file model test under stress: a file opened empty was read, then
    /// truncated and rewritten longer before the signature grew. The signature was read from the
    /// file's head again, so it was the new content's, the next check found it matching, and the
    /// new content was read from the old content's offset: its first lines lost, a line cut in two.
    @Test("The signature grows from the bytes read, not from the file's head read again after a rewrite")
    func signatureGrowsFromWhatWasRead() throws {
        let tmp = TempDir("sluice-sig")
        defer { tmp.remove() }
        let path = tmp.path + "/a.log"
        let r = try reader(of: path, content: "", offset: 0)
        let fd = r.fd
        let first = "id=000013 first file, line one\nid=000014 first file, line two\n"
        writeFile(path, first)
        let reader = ChunkReader(maxReadBufferSize: 65536, transcoder: nil)
        guard case .success(let out) = reader.read(r, now: 0, wallNanos: 0) else { Issue.record("read failed"); return }
        #expect(out.batch?.events.count == 2)
        #expect(r.headRead == Array(first.utf8))
        // Truncated and rewritten, longer, before the reader looks again.
        let second = "id=000020 second file, a longer first line than before\nid=000021 and more\nid=000022 and more\n"
        #expect(truncate(path, 0) == 0)
        writeFile(path, second)
        let grown = try #require(r.grownSignature)
        #expect(grown == FileSignature(hash: FNV1a.hash(Array(first.utf8)), length: first.utf8.count))
        // The check before the next read compares the file's head with it: a mismatch, so the
        // rewrite is seen (reading restarts at 0). The file's head read again would have matched.
        #expect(try FileSignature.read(fd: fd, length: grown.length).get() != grown)
        #expect(try FileSignature.read(fd: fd, length: grown.length).get() == FileSignature(hash: FNV1a.hash(Array(second.utf8.prefix(grown.length))), length: grown.length))
    }

    /// A reader resumed past 0 (a checkpoint, `TailSizeKB`) has no bytes of its own from offset 0:
    /// its signature grows from the file's head, and only while that head starts with it.
    @Test("A reader resumed past 0 grows its signature only from a head that starts with it")
    func resumedReaderGrowsOnlyFromAMatchingHead() throws {
        let tmp = TempDir("sluice-sig")
        defer { tmp.remove() }
        let r = try reader(of: tmp.path + "/a.log", content: "one\ntwo\n", offset: 4)
        r.signature = FileSignature(hash: FNV1a.hash(Array("one\n".utf8)), length: 4)
        let appended = Array("one\ntwo\nthree\n".utf8)
        #expect(r.grownSignature(fromHead: appended) == FileSignature(hash: FNV1a.hash(appended), length: appended.count))
        // Truncated and rewritten longer between a read and the growth: not taken.
        #expect(r.grownSignature(fromHead: Array("uno\ndos\ntres\n".utf8)) == nil)
        #expect(r.grownSignature(fromHead: Array("one".utf8)) == nil, "not longer")
    }

    @Test("Only bytes read from offset 0 onwards count; a reader that started later has no head of its own")
    func headReadOnlyFromTheStart() throws {
        let tmp = TempDir("sluice-sig")
        defer { tmp.remove() }
        let r = try reader(of: tmp.path + "/a.log", content: "one\ntwo\nthree\n", offset: 4)
        _ = ChunkReader(maxReadBufferSize: 65536, transcoder: nil).read(r, now: 0, wallNanos: 0)
        #expect(r.headRead == nil && r.grownSignature == nil)
        r.restart(at: 0)
        _ = ChunkReader(maxReadBufferSize: 65536, transcoder: nil).read(r, now: 0, wallNanos: 0)
        #expect(r.headRead == Array("one\ntwo\nthree\n".utf8))
    }
}
