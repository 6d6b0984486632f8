import SluiceSystem
/// Why a static container file could not be read, and where.
public struct StaticContainerFileError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Byte offset of the problem in the file.
    public var offset: Int
    /// 1-based line of `offset`.
    public var line: Int
    /// 1-based column (in bytes) of `offset`.
    public var column: Int
    /// Index of the array entry the problem is in, nil for syntax errors and the top level.
    public var entry: Int?
    /// The entry's `ID`, when it was read before the problem.
    public var entryID: String?
    /// The field, e.g. `State.Pid` or `Mounts[0].Source`; nil for syntax errors.
    public var field: String?
    /// What is wrong.
    public var message: String

    /// Creates an error; see the properties.
    public init(offset: Int, line: Int, column: Int, entry: Int? = nil, entryID: String? = nil, field: String? = nil, message: String) {
        self.offset = offset
        self.line = line
        self.column = column
        self.entry = entry
        self.entryID = entryID
        self.field = field
        self.message = message
    }

    /// E.g. `line 3, column 17 (byte 52): entry 1 (ID "abc"), field State.Pid: expected an integer, found a string`.
    public var description: String {
        var text = "line \(line), column \(column) (byte \(offset)): "
        if let entry {
            text += "entry \(entry)"
            if let entryID, !entryID.isEmpty { text += " (ID \"\(entryID)\")" }
            text += field == nil ? ": " : ", "
        }
        if let field { text += "field \(field): " }
        return text + message
    }
}

/// The static container file of serverless setups (iLogtail's `ALIYUN_LOG_STATIC_CONTAINER_INFO`):
/// a JSON array of
/// `{ID, Name, Created, HostName, IP, Image, LogPath, Labels{}, LogType, UpperDir, Env{}, Mounts[{Source, Destination, Driver}], State{Status, Pid}}`.
///
/// As with Go's `encoding/json` (which the incumbent uses): keys match case-insensitively, unknown
/// keys and `null` values are ignored, and a value of the wrong JSON type is an error. `ID` is
/// required (the registry keys containers by it). `Created` is an RFC 3339 time (an unreadable one
/// is left unknown, as the incumbent keeps it as text). `Env` may also be a list of `KEY=VALUE`
/// strings. Kubernetes names come from the `io.kubernetes.*` labels or the `k8s_…` name pattern, as
/// for Docker; for a Kubernetes container the other labels are taken as the pod's labels.
/// `HostName`, `LogType` and `Mounts[].Driver` are not used.
public enum StaticContainerFile {
    /// The environment variable naming the file.
    public static let environmentVariable = "ALIYUN_LOG_STATIC_CONTAINER_INFO"

    /// The containers of a file, in file order, with runtime ``ContainerRuntimeKind/static``.
    public static func parse(_ bytes: [UInt8]) throws(StaticContainerFileError) -> [ContainerInfo] {
        let root: StaticJSON.Node
        do {
            root = try StaticJSON.parse(bytes)
        } catch {
            let (line, column) = StaticJSON.lineAndColumn(of: error.offset, in: bytes)
            throw StaticContainerFileError(offset: error.offset, line: line, column: column, message: error.message)
        }
        let items: [StaticJSON.Node]
        switch root.value {
        case .array(let array): items = array
        case .null: items = []
        default:
            let (line, column) = StaticJSON.lineAndColumn(of: root.offset, in: bytes)
            throw StaticContainerFileError(offset: root.offset, line: line, column: column,
                                           message: "expected an array of containers, found \(root.value.kindName)")
        }
        var out: [ContainerInfo] = []
        for (index, item) in items.enumerated() {
            var reader = FieldReader(bytes: bytes, entry: index, entryID: nil, prefix: "", node: item)
            out.append(try container(&reader))
        }
        return out
    }

    private static func container(_ r: inout FieldReader) throws(StaticContainerFileError) -> ContainerInfo {
        try r.requireObject()
        let id = try r.string("ID")
        guard !id.isEmpty else { throw r.error(field: "ID", at: r.node.offset, "missing or empty (every container needs its ID)") }
        r.entryID = id
        var name = try r.string("Name")
        if name.hasPrefix("/") { name.removeFirst() }
        var info = ContainerInfo(id: id, name: name, image: try r.string("Image"), runtime: .static)
        info.createdAt = RFC3339.parse(try r.string("Created")) ?? 0
        info.ip = try r.string("IP")
        info.logPath = try r.string("LogPath")
        info.upperDir = try r.string("UpperDir")
        info.labels = try r.stringMap("Labels")
        info.env = try r.env("Env")
        for mount in try r.objects("Mounts") {
            info.mounts.append(ContainerMount(source: try mount.string("Source"), destination: try mount.string("Destination")))
        }
        if let state = try r.object("State") {
            info.state = containerState(try state.string("Status"))
            info.pid = try state.int("Pid")
        }
        let (kubernetes, sandbox) = KubernetesNames.fromDocker(labels: info.labels, name: name)
        if var kubernetes {
            kubernetes.podLabels = KubernetesNames.podLabels(fromSandboxLabels: info.labels)
            info.kubernetes = kubernetes
        }
        info.isSandbox = sandbox
        return info
    }

    /// Docker's `State.Status` → ``ContainerState``.
    static func containerState(_ status: String) -> ContainerState {
        switch status.lowercased() {
        case "running", "restarting", "paused": return .running
        case "created": return .created
        case "exited", "dead", "removing", "stopped": return .exited
        default: return .unknown
        }
    }
}

/// Reads typed fields of one JSON object, with errors that name the entry and the field.
private struct FieldReader {
    let bytes: [UInt8]
    let entry: Int
    var entryID: String?
    /// The field path of this object, e.g. `State.` or `Mounts[0].`.
    let prefix: String
    let node: StaticJSON.Node
    /// Lowercased key → value (the last one wins, as in Go); nulls left out.
    var fields: [String: StaticJSON.Node] = [:]

    init(bytes: [UInt8], entry: Int, entryID: String?, prefix: String, node: StaticJSON.Node) {
        self.bytes = bytes
        self.entry = entry
        self.entryID = entryID
        self.prefix = prefix
        self.node = node
        if case .object(let entries) = node.value {
            for (key, value) in entries {
                if case .null = value.value { continue }
                fields[key.lowercased()] = value
            }
        }
    }

    func error(field: String?, at offset: Int, _ message: String) -> StaticContainerFileError {
        let (line, column) = StaticJSON.lineAndColumn(of: offset, in: bytes)
        let path = field.map { prefix + $0 } ?? (prefix.isEmpty ? nil : String(prefix.dropLast()))
        return StaticContainerFileError(offset: offset, line: line, column: column, entry: entry, entryID: entryID,
                                        field: path, message: message)
    }

    func requireObject() throws(StaticContainerFileError) {
        guard case .object = node.value else {
            throw error(field: nil, at: node.offset, "expected an object, found \(node.value.kindName)")
        }
    }

    func string(_ name: String) throws(StaticContainerFileError) -> String {
        guard let value = fields[name.lowercased()] else { return "" }
        guard case .string(let text) = value.value else {
            throw error(field: name, at: value.offset, "expected a string, found \(value.value.kindName)")
        }
        return text
    }

    func int(_ name: String) throws(StaticContainerFileError) -> Int {
        guard let value = fields[name.lowercased()] else { return 0 }
        guard case .number(let text) = value.value else {
            throw error(field: name, at: value.offset, "expected an integer, found \(value.value.kindName)")
        }
        guard let number = Int(text) else {
            throw error(field: name, at: value.offset, "expected an integer, found \(text)")
        }
        return number
    }

    func stringMap(_ name: String) throws(StaticContainerFileError) -> [String: String] {
        guard let value = fields[name.lowercased()] else { return [:] }
        guard case .object(let entries) = value.value else {
            throw error(field: name, at: value.offset, "expected an object of strings, found \(value.value.kindName)")
        }
        var out: [String: String] = [:]
        for (key, item) in entries {
            switch item.value {
            case .string(let text): out[key] = text
            case .null: continue
            default:
                throw error(field: "\(name).\(key)", at: item.offset, "expected a string, found \(item.value.kindName)")
            }
        }
        return out
    }

    /// `Env`: an object of strings, or (like Docker's `Config.Env`) a list of `KEY=VALUE`.
    func env(_ name: String) throws(StaticContainerFileError) -> [String: String] {
        guard let value = fields[name.lowercased()] else { return [:] }
        guard case .array(let items) = value.value else { return try stringMap(name) }
        var out: [String: String] = [:]
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item.value else {
                throw error(field: "\(name)[\(index)]", at: item.offset, "expected a KEY=VALUE string, found \(item.value.kindName)")
            }
            if let equals = text.firstIndex(of: "=") {
                out[String(text[..<equals])] = String(text[text.index(after: equals)...])
            } else {
                out[text] = ""
            }
        }
        return out
    }

    func object(_ name: String) throws(StaticContainerFileError) -> FieldReader? {
        guard let value = fields[name.lowercased()] else { return nil }
        guard case .object = value.value else {
            throw error(field: name, at: value.offset, "expected an object, found \(value.value.kindName)")
        }
        return FieldReader(bytes: bytes, entry: entry, entryID: entryID, prefix: prefix + name + ".", node: value)
    }

    func objects(_ name: String) throws(StaticContainerFileError) -> [FieldReader] {
        guard let value = fields[name.lowercased()] else { return [] }
        guard case .array(let items) = value.value else {
            throw error(field: name, at: value.offset, "expected an array of objects, found \(value.value.kindName)")
        }
        var out: [FieldReader] = []
        for (index, item) in items.enumerated() {
            let reader = FieldReader(bytes: bytes, entry: entry, entryID: entryID, prefix: "\(prefix)\(name)[\(index)].", node: item)
            try reader.requireObject()
            out.append(reader)
        }
        return out
    }
}
