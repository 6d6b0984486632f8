import Foundation
import SluiceConfig
import SluiceFiles
import SluiceSystem

/// What `sluice explain` shows of one pipeline's reading: its file patterns, and each file it has
/// a position for (from the checkpoints under `--data-dir`, read without writing anything, so it
/// can run beside the daemon): the host path, the acknowledged position, the size now.
struct PipelinePositions: Encodable {
    struct File: Encodable {
        var path: String
        /// Every byte before it has been delivered and acknowledged.
        var position: Int64
        /// Size of the same file (device and inode) at that path now; nil when it is gone or replaced.
        var size: Int64?
        var state: String
    }

    var pipeline: String
    var file: String
    var patterns: [String]
    var files: [File]

    static func read(file: String, dataDir: String) -> PipelinePositions {
        let name = PipelineFiles.pipelineName(of: file)
        var patterns: [String] = []
        if let text = try? String(contentsOfFile: file, encoding: .utf8), let doc = try? ConfigObject.parse(yaml: text, file: file) {
            for input in ((try? doc.objectList("inputs")) ?? nil) ?? [] {
                let type = ((try? input.string("Type")) ?? nil) ?? ""
                let paths = ((try? input.stringList("FilePaths")) ?? nil) ?? []
                if paths.isEmpty { patterns.append("(\(type))") }
                let inContainers = ((try? input.bool("EnableContainerDiscovery")) ?? nil) == true
                patterns += paths.map { inContainers ? "\($0) (inside containers)" : $0 }
            }
        }
        let files = CheckpointTable.read(dataDir: dataDir, pipeline: name).map { e -> File in
            guard case .success(let st) = Sys.stat(e.path), st.dev == e.dev, st.inode == e.inode else {
                return File(path: e.path, position: e.offset, size: nil, state: "gone (deleted or replaced since)")
            }
            if st.size < e.offset { return File(path: e.path, position: e.offset, size: st.size, state: "truncated since") }
            if st.size == e.offset { return File(path: e.path, position: e.offset, size: st.size, state: "read to the end") }
            return File(path: e.path, position: e.offset, size: st.size, state: "\(st.size - e.offset) bytes not delivered yet")
        }
        return PipelinePositions(pipeline: name, file: file, patterns: patterns, files: files)
    }

    func printText() {
        print("\nPipeline \(pipeline) (\(file)) reads \(patterns.isEmpty ? "(no input)" : patterns.joined(separator: ", ")):")
        if files.isEmpty { print("  no positions recorded yet") }
        for f in files {
            print("  \(f.path)  position \(f.position)\(f.size.map { " of \($0)" } ?? ""): \(f.state)")
        }
    }
}
