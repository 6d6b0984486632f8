import Glibc
@testable import SluiceFiles
import SluiceSystem
import SluiceTesting
import Testing

/// A copy made by copytruncate is read after the part its original had emitted; the batches of
/// that part may still be in flight. The copy's checkpoint stays at what the original has
/// delivered of that part until all of it is, so a crash in between re-reads the rest from the
/// copy (the original is truncated: it no longer has it) instead of losing it.
@Suite("Checkpoints of a copy") struct CopyCheckpointTests {
    let original = FileIdentity(dev: 2049, inode: 100)
    let copy = FileIdentity(dev: 2049, inode: 101)
    let sig = FileSignature(hash: 0xABCDEF, length: 64)

    /// The original emitted 0..<100 and 100..<200, 0..<100 is acknowledged, then it is truncated
    /// and its copy is found with 200 bytes emitted: returns the sequence of 100..<200, in flight.
    func truncatedWithACopy(_ t: CheckpointTable) -> UInt64 {
        t.track(original, path: "/logs/a.log", signature: sig, offset: 0)
        let s1 = t.emitted(original, upTo: 100), s2 = t.emitted(original, upTo: 200)
        t.acknowledged(original, sequence: s1)
        t.reset(original, offset: 0, signature: sig)   // truncated with 100..<200 in flight
        t.track(copy, path: "/logs/a.log.1", signature: sig, offset: 200, copyOf: original, originalTruncated: true)
        return s2
    }

    @Test func aCopyWaitsForTheOriginalsBatchesInFlightAtTheTruncation() throws {
        let tmp = TempDir("sluice-copycp")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        let s2 = truncatedWithACopy(t)
        #expect(t.lookup(copy)?.offset == 100)
        let s3 = t.emitted(copy, upTo: 300)
        t.acknowledged(copy, sequence: s3)
        #expect(t.lookup(copy)?.offset == 100, "the copy's own acknowledgement does not pass the original's part in flight")
        // A crash here: the next start reads the copy from 100 (the journal holds it).
        #expect(try CheckpointTable(dataDir: tmp.path, pipeline: "p").lookup(copy)?.offset == 100)
        // The original's new content is counted on its own, from 0.
        let s4 = t.emitted(original, upTo: 10)
        t.acknowledged(original, sequence: s4)
        #expect(t.lookup(original)?.offset == 10)
        #expect(t.lookup(copy)?.offset == 100)
        // The batch in flight at the truncation is acknowledged: the copy's checkpoint is its own.
        t.acknowledged(original, sequence: s2)
        #expect(t.lookup(copy)?.offset == 300)
        #expect(t.lookup(original)?.offset == 10)
        #expect(try CheckpointTable(dataDir: tmp.path, pipeline: "p").lookup(copy)?.offset == 300)
    }

    @Test func aCopyFoundBeforeTheTruncationWaitsForTheOriginalToo() throws {
        let tmp = TempDir("sluice-copycp")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(original, path: "/logs/a.log", signature: sig, offset: 0)
        let s1 = t.emitted(original, upTo: 100), s2 = t.emitted(original, upTo: 150)
        t.track(copy, path: "/logs/a.log.1", signature: sig, offset: 150, copyOf: original)
        #expect(t.lookup(copy)?.offset == 0)
        t.acknowledged(original, sequence: s1)
        #expect(t.lookup(copy)?.offset == 100)
        t.reset(original, offset: 0, signature: sig)   // now truncated, 100..<150 still in flight
        #expect(t.lookup(copy)?.offset == 100)
        t.acknowledged(original, sequence: s2)
        #expect(t.lookup(copy)?.offset == 150)
    }

    /// The original truncated a second time while the batches of the part its copy skipped are
    /// still in flight: the copy goes on waiting for them (the old content of both truncations
    /// is counted on its own), and is released when they are acknowledged.
    @Test func aSecondTruncationKeepsTheCopyWaiting() throws {
        let tmp = TempDir("sluice-copycp")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        let s2 = truncatedWithACopy(t)
        #expect(t.lookup(copy)?.offset == 100)
        // New content of the original, in flight too, and a second truncation.
        let s3 = t.emitted(original, upTo: 50)
        t.reset(original, offset: 0, signature: sig)
        let s4 = t.emitted(copy, upTo: 260)
        t.acknowledged(copy, sequence: s4)
        #expect(t.lookup(copy)?.offset == 100, "still held at the first part's delivered end")
        #expect(try CheckpointTable(dataDir: tmp.path, pipeline: "p").lookup(copy)?.offset == 100)
        // The second generation's batch does not release it; the first's does.
        t.acknowledged(original, sequence: s3)
        #expect(t.lookup(copy)?.offset == 100)
        t.acknowledged(original, sequence: s2)
        #expect(t.lookup(copy)?.offset == 260)
        #expect(t.lookup(original)?.offset == 0)
        // Drained of both generations, the original let go is forgotten.
        t.release(original)
        #expect(t.lookup(original) == nil)
    }

    @Test func anOriginalLetGoIsKeptUntilItsOldBatchesAreAcknowledged() throws {
        let tmp = TempDir("sluice-copycp")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(original, path: "/logs/a.log", signature: sig, offset: 0)
        let s1 = t.emitted(original, upTo: 100)
        t.reset(original, offset: 0, signature: sig)
        t.track(copy, path: "/logs/a.log.1", signature: sig, offset: 100, copyOf: original, originalTruncated: true)
        t.release(original)
        t.prune(keeping: [copy])
        #expect(t.lookup(original) != nil, "not forgotten while a batch of its old content is in flight")
        #expect(t.lookup(copy)?.offset == 0)
        t.acknowledged(original, sequence: s1)
        #expect(t.lookup(original) == nil)
        #expect(t.lookup(copy)?.offset == 100)
    }

    @Test func withNothingInFlightTheCopyStartsWhereItIsRead() throws {
        let tmp = TempDir("sluice-copycp")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(original, path: "/logs/a.log", signature: sig, offset: 0)
        t.acknowledged(original, sequence: t.emitted(original, upTo: 80))
        t.reset(original, offset: 0, signature: sig)
        t.track(copy, path: "/logs/a.log.1", signature: sig, offset: 80, copyOf: original, originalTruncated: true)
        #expect(t.lookup(copy)?.offset == 80)
        // The same file tracked again (not as a copy) has no floor.
        let s = t.emitted(original, upTo: 5)
        t.track(copy, path: "/logs/a.log.1", signature: sig, offset: 90)
        #expect(t.lookup(copy)?.offset == 90)
        t.acknowledged(original, sequence: s)
        #expect(t.lookup(copy)?.offset == 90)
    }
}
