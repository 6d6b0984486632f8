/// Names made safe to be one path component.
public enum FileNames {
    /// `name` as one file name: ASCII letters, digits, `-` and `_` kept, `.` kept except first
    /// (no hidden files, no `..`), every other byte as `%XX`. Distinct names stay distinct.
    public static func component(_ name: String) -> String {
        var s = ""
        let hex = Array("0123456789ABCDEF")
        for b in name.utf8 {
            if (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F || (b == 0x2E && !s.isEmpty) {
                s.append(Character(UnicodeScalar(b)))
            } else {
                s += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 0xF)])
            }
        }
        return s
    }
}
