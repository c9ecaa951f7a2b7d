import Crypto
import Foundation

/// The cost parameters of scrypt, stored in every key file.
public struct KDFParameters: Codable, Sendable, Equatable {
    /// CPU/memory cost (a power of two).
    public var n: Int
    /// Block size.
    public var r: Int
    /// Parallelism.
    public var p: Int

    public init(n: Int, r: Int, p: Int) {
        self.n = n
        self.r = r
        self.p = p
    }

    /// 2^15 × 8 × 1: 32 MiB and about 50 ms on the benchmark machine; the default for new keys.
    public static let standard = KDFParameters(n: 1 << 15, r: 8, p: 1)
    /// Cheap parameters for tests only: never for real repositories.
    public static let testing = KDFParameters(n: 1 << 10, r: 8, p: 1)
}

/// A password-protected copy of the master key: `keys/<sha256 of the file>`, plain JSON.
///
/// The wrapping key is scrypt(password, salt); the master key is sealed under it with AES-256-GCM,
/// so a wrong password fails authentication instead of yielding garbage.
public struct KeyFile: Codable, Sendable {
    public var version: Int
    public var created: Date
    public var hostname: String
    public var username: String
    public var kdf: String
    public var parameters: KDFParameters
    public var salt: Data
    /// The master key's JSON, sealed under the password-derived key.
    public var data: Data

    /// Wraps `master` under `password`.
    public static func make(master: MasterKey, password: String, parameters: KDFParameters, now: Date = Date()) throws -> KeyFile {
        var salt = Data(count: 32)
        salt.withUnsafeMutableBytes { raw in
            var rng = SystemRandomNumberGenerator()
            for i in 0..<raw.count { raw[i] = UInt8.random(in: 0...255, using: &rng) }
        }
        let wrapping = try deriveKey(password: password, salt: salt, parameters: parameters)
        let plaintext = try JSONEncoder().encode(master.encoded)
        let sealed = try AES.GCM.seal(plaintext, using: wrapping).combined!
        return KeyFile(
            version: 1, created: now, hostname: HostIdentity.name,
            username: currentUserName(), kdf: "scrypt", parameters: parameters, salt: salt, data: sealed)
    }

    /// Unwraps the master key, or throws ``BunkerError/Code/wrongPassword``.
    public func unlock(password: String) throws -> MasterKey {
        guard version == 1, kdf == "scrypt" else {
            throw BunkerError(.unsupportedFormat, "A key file has version \(version) and KDF \"\(kdf)\", which this Bunker cannot read; upgrade Bunker.")
        }
        let wrapping = try KeyFile.deriveKey(password: password, salt: salt, parameters: parameters)
        let plaintext: Data
        do {
            plaintext = try AES.GCM.open(AES.GCM.SealedBox(combined: data), using: wrapping)
        } catch {
            throw BunkerError(.wrongPassword, "Wrong password: no key of this repository opens with it.")
        }
        return try MasterKey(JSONDecoder().decode(MasterKey.Encoded.self, from: plaintext))
    }

    static func deriveKey(password: String, salt: Data, parameters: KDFParameters) throws -> SymmetricKey {
        var key = try Scrypt.derive(
            password: Array(password.utf8), salt: Array(salt), n: parameters.n, r: parameters.r, p: parameters.p, length: 32)
        defer { key.withUnsafeMutableBytes { explicit_bzero($0.baseAddress!, $0.count) } }
        return SymmetricKey(data: key)
    }

    /// The file's bytes as stored.
    public func encoded() throws -> Data {
        try JSONCoding.encoder.encode(self)
    }
}

/// The login name of the process's user, for key files, locks and snapshots.
public func currentUserName() -> String {
    if let name = ProcessInfo.processInfo.environment["USER"], !name.isEmpty { return name }
    if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
    return "uid\(getuid())"
}

/// The JSON encoders every stored object uses: sorted keys so that equal content encodes equally.
enum JSONCoding {
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        encoder.dataEncodingStrategy = .base64
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { dec in
            let c = try dec.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time: \(text)")
            }
            return date
        }
        return decoder
    }
}

/// RFC 3339 UTC timestamps with nanoseconds, as stored and printed.
public enum Timestamp {
    /// Whole seconds (the fraction dropped), as S3 writes dates: `2031-12-04T09:30:00Z`.
    public static func formatSeconds(_ date: Date) -> String {
        utc(Int64(date.timeIntervalSince1970.rounded(.down)), separator: "T") + "Z"
    }

    public static func format(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let nanos = Int(((date.timeIntervalSince1970 - seconds) * 1e9).rounded())
        return utc(Int64(seconds), separator: "T") + String(format: ".%09dZ", min(nanos, 999_999_999))
    }

    /// `YYYY-MM-DD`, the separator, `HH:MM:SS`: the UTC date and time of whole seconds since 1970,
    /// without a formatter (see ``parse(_:)`` for why).
    public static func utc(_ seconds: Int64, separator: String) -> String {
        var t = time_t(seconds)
        var fields = tm()
        gmtime_r(&t, &fields)
        return String(format: "%04d-%02d-%02d%@%02d:%02d:%02d", Int(fields.tm_year) + 1900, Int(fields.tm_mon) + 1,
                      Int(fields.tm_mday), separator, Int(fields.tm_hour), Int(fields.tm_min), Int(fields.tm_sec))
    }

    /// Reads an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of any length
    /// (kept to the nanosecond), then `Z` or an offset `±HH:MM`. `T` and `Z` may be lower case.
    ///
    /// Written by hand rather than with Foundation's `ISO8601DateFormatter`: that one keeps only
    /// milliseconds, costs a formatter per call (S3 listings carry a date per object), and loads
    /// ICU's calendar data, about 6 MiB of a command's resident memory, for this alone.
    public static func parse(_ text: String) -> Date? {
        var reader = DigitReader(Array(text.utf8))
        guard let year = reader.number(4), reader.skip("-"), let month = reader.number(2), reader.skip("-"),
              let day = reader.number(2), reader.skip("T") || reader.skip("t"),
              let hour = reader.number(2), reader.skip(":"), let minute = reader.number(2), reader.skip(":"),
              let second = reader.number(2) else { return nil }
        var nanoseconds = 0
        if reader.skip(".") {
            var digits = 0
            while let digit = reader.digit() {
                if digits < 9 { nanoseconds = nanoseconds * 10 + digit }
                digits += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { nanoseconds *= 10 }
        }
        var offset = 0
        if reader.skip("Z") || reader.skip("z") {
            offset = 0
        } else if let sign = reader.skip("+") ? 1 : reader.skip("-") ? -1 : nil,
                  let hours = reader.number(2), reader.skip(":"), let minutes = reader.number(2),
                  hours < 24, minutes < 60 {
            offset = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard reader.atEnd, (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour < 24, minute < 60, second <= 60 else { return nil }
        var fields = tm()
        fields.tm_year = Int32(year - 1900)
        fields.tm_mon = Int32(month - 1)
        fields.tm_mday = Int32(day)
        fields.tm_hour = Int32(hour)
        fields.tm_min = Int32(minute)
        fields.tm_sec = Int32(second)
        let seconds = timegm(&fields)
        return Date(timeIntervalSince1970: Double(seconds - offset) + Double(nanoseconds) / 1e9)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Fixed-width ASCII numbers and single characters, read left to right.
    private struct DigitReader {
        let bytes: [UInt8]
        var at = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { at == bytes.count }

        mutating func digit() -> Int? {
            guard at < bytes.count, bytes[at] >= UInt8(ascii: "0"), bytes[at] <= UInt8(ascii: "9") else { return nil }
            defer { at += 1 }
            return Int(bytes[at] - UInt8(ascii: "0"))
        }

        mutating func number(_ width: Int) -> Int? {
            let start = at
            var value = 0
            for _ in 0..<width {
                guard let digit = digit() else { at = start; return nil }
                value = value * 10 + digit
            }
            return value
        }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard at < bytes.count, bytes[at] == UInt8(ascii: character) else { return false }
            at += 1
            return true
        }
    }
}
