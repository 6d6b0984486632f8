import SluiceConfig
import SluiceCore

/// The names of the tags a file input gives its events, and of the per-line offset field: the
/// incumbent's `Tags` map, `AppendingLogPositionMeta` and `FileOffsetKey` (LoongCollector's
/// FileTagOptions). A name of `""` leaves the tag out; `__default__` is the default name.
public struct FileTagKeys: Sendable, Equatable {
    /// `__path__` (FilePathTagKey, added by default); nil: left out.
    public var path: String? = FileTagKeys.defaultPath
    /// Whether `Tags.FilePathTagKey` names the path tag: container stdout, which has none by
    /// default, then gets it.
    public var pathNamed = false
    /// `__inode__` (FileInodeTagKey): the file's inode number; nil: not added (the default).
    public var inode: String?
    /// `__file_offset__` (FileOffsetKey): each event's file offset, as a field; nil: not added.
    public var offset: String?
    /// Container tags renamed, default name → name (`""`: left out), with container discovery.
    public var containerRenames: [String: String] = [:]

    public init() {}

    public static let defaultPath = "__path__"
    public static let defaultInode = "__inode__"
    public static let defaultOffset = "__file_offset__"
    /// The incumbent's spelling of "the default name".
    static let defaultValue = "__default__"

    /// `Tags` keys of the container tags, with the tag each renames.
    static let containerKeys: [(key: String, tag: String)] = [
        ("K8sNamespaceTagKey", "_namespace_"), ("K8sPodNameTagKey", "_pod_name_"), ("K8sPodUidTagKey", "_pod_uid_"),
        ("ContainerNameTagKey", "_container_name_"), ("ContainerIpTagKey", "_container_ip_"),
        ("ContainerImageNameTagKey", "_image_name_"),
    ]

    static let tagFields: [FieldSpec] = [
        FieldSpec(name: "FilePathTagKey", type: .string, doc: "Name of the file path tag (`\"\"`: left out). Container stdout has no path tag unless this names it.", defaultValue: defaultPath),
        FieldSpec(name: "FileInodeTagKey", type: .string, doc: "Adds the file's inode number as a tag of this name (`__default__`: `__inode__`). With it or `FileOffsetKey` set, `AppendingLogPositionMeta` is not looked at.", defaultValue: nil),
    ] + containerKeys.map {
        FieldSpec(name: $0.key, type: .string, doc: "With container discovery: name of the `\($0.tag)` tag (`\"\"`: left out).", defaultValue: $0.tag)
    } + [
        FieldSpec(name: "ContainerImageTagKey", type: .string, doc: "The incumbent's docs' name for `ContainerImageNameTagKey`; its code does not read it.", defaultValue: nil,
                  status: .acceptedNotYetEffective(reason: "the incumbent's code reads ContainerImageNameTagKey, not this name from its docs; use ContainerImageNameTagKey")),
    ]

    /// The fields of a file input about its tags and line offsets.
    public static let fields: [FieldSpec] = [
        FieldSpec(name: "Tags", type: .object(fields: tagFields), doc: "Renames or leaves out the tags the input adds (a name of `\"\"` leaves the tag out, `__default__` is the default name), as the incumbent's `Tags`.", defaultValue: nil),
        FieldSpec(name: "AppendingLogPositionMeta", type: .bool, doc: "Adds each event's file offset (of its first byte, before any transcoding) as the field `__file_offset__`, after its content, and the file's inode number as the tag `__inode__`. Not looked at when `FileOffsetKey` or `Tags.FileInodeTagKey` is set (each then adds only what it names). Runtime logs (container stdout, `ContainerLogFormat`) give the offset of the record's first line.", defaultValue: "false"),
        FieldSpec(name: "FileOffsetKey", type: .string, doc: "Adds each event's file offset as a field of this name (`__default__`: `__file_offset__`; `\"\"`: none).", defaultValue: nil),
    ]

    /// Reads the tag options of a file input's config (the incumbent's FileTagOptions rules).
    public static func from(_ c: ConfigObject) throws(ConfigError) -> FileTagKeys {
        var k = FileTagKeys()
        let tags = try c.object("Tags")
        func named(_ value: String?, default name: String) -> String? {
            guard let value else { return nil }
            if value == defaultValue { return name }
            return value.isEmpty ? nil : value
        }
        if let p = try tags?.string("FilePathTagKey") {
            k.path = named(p, default: defaultPath)
            k.pathNamed = k.path != nil
        }
        let inodeKey = try tags?.string("FileInodeTagKey")
        let offsetKey = try c.string("FileOffsetKey")
        if inodeKey != nil || offsetKey != nil {
            k.inode = named(inodeKey, default: defaultInode)
            k.offset = named(offsetKey, default: defaultOffset)
        } else if try c.bool("AppendingLogPositionMeta") == true {
            k.inode = defaultInode
            k.offset = defaultOffset
        }
        for (key, tag) in containerKeys {
            if let v = try tags?.string(key) { k.containerRenames[tag] = v == defaultValue ? tag : v }
        }
        return k
    }

    /// `tags` (a container's) with the renames applied: renamed, or left out for `""`.
    public func renamingContainerTags(_ tags: [EventTag]) -> [EventTag] {
        guard !containerRenames.isEmpty else { return tags }
        return tags.compactMap { t in
            guard let name = containerRenames[t.key] else { return t }
            return name.isEmpty ? nil : EventTag(name, t.value)
        }
    }
}
