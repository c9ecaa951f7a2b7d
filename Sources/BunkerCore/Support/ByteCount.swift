import Foundation

/// Byte counts for people: `1.5 GiB`, `340.0 KiB`, `12 B`, in powers of 1024 as everywhere in
/// Bunker's output. Foundation's `ByteCountFormatter` would load ICU's locale data (about 5 MiB
/// of resident memory) to print the same number with `MB` meaning MiB.
public enum ByteCount {
    public static func text(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var scaled = Double(value)
        var unit = 0
        while scaled >= 1024 && unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : String(format: "%.1f %@", scaled, units[unit])
    }
}
