import SluiceSystem

/// The pipeline files of a config directory, their pipeline names and content hashes: the one
/// place that decides what counts as a pipeline file (the daemon, `validate` and `explain` all
/// ask here).
public enum PipelineFiles {
    /// Whether a directory entry is a pipeline config file: `.yaml`, `.yml` or `.json`
    /// (any case), not hidden (`.name`), not an editor's backup (`~`) or swap file (`.swp`).
    public static func isPipelineFile(_ path: String) -> Bool {
        let name = ConfigError.basename(of: path)
        guard !name.isEmpty, !name.hasPrefix("."), !name.hasSuffix("~"), !name.lowercased().hasSuffix(".swp") else {
            return false
        }
        return pipelineExtension(of: name) != nil
    }

    /// The pipeline name for a file: its name without directory and without its `.yaml`/`.yml`/
    /// `.json` extension, in any case (`app.YAML` → `app`).
    public static func pipelineName(of path: String) -> String {
        let name = ConfigError.basename(of: path)
        if let ext = pipelineExtension(of: name) {
            return String(name.dropLast(ext.count))
        }
        return name
    }

    private static func pipelineExtension(of name: String) -> String? {
        let lowered = name.lowercased()
        for ext in [".yaml", ".yml", ".json"] where lowered.hasSuffix(ext) && lowered.count > ext.count {
            return ext
        }
        return nil
    }

    /// The pipeline files in `directory`, as full paths, sorted. A directory that cannot be read
    /// is an error (never taken as empty: that would stop every pipeline).
    public static func list(directory: String) -> Result<[String], PathError> {
        switch Sys.listDirectory(directory) {
        case .failure(let e):
            return .failure(PathError(path: directory, errno: e))
        case .success(let entries):
            let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
            return .success(entries.map(\.name).filter(isPipelineFile).sorted().map { dir + "/" + $0 })
        }
    }

    /// FNV-1a 64 of a file's bytes (``PipelineDocument/contentHash``), to tell whether it changed.
    public static func contentHash(_ bytes: [UInt8]) -> UInt64 { FNV1a.hash(bytes) }

    /// A whole pipeline file (at most 16 MiB), with the system's reason on failure.
    public static func read(_ path: String) throws(ConfigError) -> [UInt8] {
        switch Sys.readFile(path, limit: 16 << 20) {
        case .success(let b): return b
        case .failure(let e): throw ConfigError(file: path, message: "cannot read the file: \(Sys.errorString(e.code))")
        }
    }
}
