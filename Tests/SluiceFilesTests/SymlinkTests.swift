import Glibc
import SluiceCore
@testable import SluiceFiles
import SluiceTesting
import Testing

/// Symbolic links under `**`: a loop does not make the walk go round forever or read a file twice.
@Suite("input_file symlinks") struct SymlinkTests {
    @Test func aSymlinkLoopUnderDoubleStarIsWalkedOnceAndEveryFileReadOnce() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let sub = env.inDir + "/a/b"
        makeDirectories(sub)
        // a/b/loop → a: a cycle; a/b/self → . : a cycle of one.
        #expect(symlink(env.inDir + "/a", sub + "/loop") == 0)
        #expect(symlink(".", sub + "/self") == 0)
        writeFile(env.inDir + "/a/top.log", "top-1\n")
        writeFile(sub + "/deep.log", "deep-1\n")
        var o = env.options([env.inDir + "/**/*.log"])
        o.maxDirSearchDepth = 20
        let sink = FIRecordingSink()
        let metrics = PipelineMetrics()
        let t0 = monotonicSeconds()
        let input = try env.input(o, table: try env.table(), metrics: metrics)
        try await fiWithInput(input, sink: sink) {
            #expect(await eventually { sink.lines.count >= 2 })
            writeFile(sub + "/deep.log", "deep-2\n", append: true)
            #expect(await eventually { sink.lines.contains("deep-2") })
            await pause(1.2)  // two rescans: a file seen again through the loop would be read again by now
        }
        // Each directory walked by one path only: the two links close cycles and are cut there
        // (before, the walk went down them to the depth limit, thousands of paths per scan).
        #expect(input.watchedDirs.count == 3, "directories watched: one per directory, not one per path to it")
        if input.watchedDirs.count == 3 { #expect(Set(input.watchedDirs.keys) == [env.inDir, env.inDir + "/a", sub]) }
        #expect(input.directoryCyclesSkipped >= 2)
        #expect(monotonicSeconds() - t0 < 10, "the walk did not spin")
        #expect(sink.lines.sorted() == ["deep-1", "deep-2", "top-1"])
        #expect(metrics.filesOpened.current == 2, "each file opened once, whatever path it is seen by")
    }
}
