/// The fixed-format dates of HTTP and S3, to and from Unix seconds, without Foundation formatters (no
/// ICU, no allocation beyond the result, thread-safe): `DateFormatter` per request was a quarter of the
/// CPU time of small encrypted GETs.
public enum HTTPDate {
    private static let dayNames: [[UInt8]] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].map { Array($0.utf8) }
    private static let longDayNames: [[UInt8]] =
        ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"].map { Array($0.utf8) }
    private static let monthNames: [[UInt8]] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }

    // MARK: - RFC 9110 (Date, Last-Modified, If-Modified-Since…)

    /// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    public static func format(_ seconds: Int64) -> String {
        let (days, rest) = split(seconds)
        let (y, m, d) = civil(fromDays: days)
        let weekday = Int((days % 7 + 11) % 7)  // 1970-01-01 was a Thursday
        return String(unsafeUninitializedCapacity: 29) { out in
            var i = 0
            func put(_ bytes: [UInt8]) { for b in bytes { out[i] = b; i += 1 } }
            func byte(_ b: UInt8) { out[i] = b; i += 1 }
            func digits(_ v: Int64, _ width: Int) {
                var v = v
                for k in stride(from: width - 1, through: 0, by: -1) {
                    out[i + k] = UInt8(48 + v % 10)
                    v /= 10
                }
                i += width
            }
            put(dayNames[weekday]); byte(44); byte(32)
            digits(d, 2); byte(32); put(monthNames[Int(m - 1)]); byte(32); digits(y, 4); byte(32)
            digits(rest / 3600, 2); byte(58); digits(rest / 60 % 60, 2); byte(58); digits(rest % 60, 2)
            put([32, 71, 77, 84])
            return i
        }
    }

    /// Any of RFC 9110's three forms (IMF-fixdate, obsolete RFC 850, asctime), surrounding whitespace
    /// allowed; nil for anything else (a recipient then ignores the conditional header).
    public static func parse(_ text: some StringProtocol) -> Int64? {
        var bytes = Array(text.utf8)[...]
        while let f = bytes.first, f == 32 || f == 9 { bytes = bytes.dropFirst() }
        while let l = bytes.last, l == 32 || l == 9 { bytes = bytes.dropLast() }
        let b = Array(bytes)
        return parseIMFFixdate(b) ?? parseRFC850(b) ?? parseAsctime(b)
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    static func parseIMFFixdate(_ b: [UInt8]) -> Int64? {
        guard b.count == 29, b[3] == 44, b[4] == 32, b[7] == 32, b[11] == 32, b[16] == 32, b[25] == 32,
              dayNames.contains(where: { $0[...] == b[0..<3] }), b[26..<29] == [71, 77, 84][...],
              let day = number(b[5..<7]), let month = month(b[8..<11]), let year = number(b[12..<16]),
              let time = clock(b[17..<25])
        else { return nil }
        return epoch(year: year, month: month, day: day, time: time)
    }

    /// `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years: 70–99 are 19xx, 00–69 are 20xx).
    static func parseRFC850(_ b: [UInt8]) -> Int64? {
        guard let comma = b.firstIndex(of: 44), longDayNames.contains(where: { $0[...] == b[0..<comma] }) else { return nil }
        let r = Array(b[(comma + 1)...])
        guard r.count == 23, r[0] == 32, r[3] == 45, r[7] == 45, r[10] == 32, r[19] == 32,
              r[20..<23] == [71, 77, 84][...],
              let day = number(r[1..<3]), let month = month(r[4..<7]), let yy = number(r[8..<10]),
              let time = clock(r[11..<19])
        else { return nil }
        return epoch(year: yy < 70 ? 2000 + yy : 1900 + yy, month: month, day: day, time: time)
    }

    /// `Sun Nov  6 08:49:37 1994`
    static func parseAsctime(_ b: [UInt8]) -> Int64? {
        guard b.count == 24, b[3] == 32, b[7] == 32, b[10] == 32, b[19] == 32,
              dayNames.contains(where: { $0[...] == b[0..<3] }), let month = month(b[4..<7]),
              let time = clock(b[11..<19]), let year = number(b[20..<24])
        else { return nil }
        let day: Int64?
        if b[8] == 32 { day = number(b[9..<10]) } else { day = number(b[8..<10]) }
        guard let day else { return nil }
        return epoch(year: year, month: month, day: day, time: time)
    }

    // MARK: - ISO 8601 as S3 writes it (listings, x-amz-* dates)

    /// `2009-10-12T17:50:30.000Z`; the fraction (any number of digits) is optional and dropped.
    public static func parseISO8601(_ text: some StringProtocol) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20, b[4] == 45, b[7] == 45, b[10] == 84 || b[10] == 116, b.last == 90 || b.last == 122,
              let year = number(b[0..<4]), let month = number(b[5..<7]), let day = number(b[8..<10]),
              let time = clock(b[11..<19])
        else { return nil }
        if b.count > 20 {
            guard b[19] == 46, b.count > 21, b[20..<(b.count - 1)].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        }
        return epoch(year: year, month: month, day: day, time: time)
    }

    /// `2009-10-12T17:50:30.000Z` (milliseconds always written, as S3 does).
    public static func formatISO8601(_ seconds: Int64, milliseconds: Int = 0) -> String {
        let (days, rest) = split(seconds)
        let (y, m, d) = civil(fromDays: days)
        return String(unsafeUninitializedCapacity: 24) { out in
            var i = 0
            func byte(_ b: UInt8) { out[i] = b; i += 1 }
            func digits(_ v: Int64, _ width: Int) {
                var v = v
                for k in stride(from: width - 1, through: 0, by: -1) {
                    out[i + k] = UInt8(48 + v % 10)
                    v /= 10
                }
                i += width
            }
            digits(y, 4); byte(45); digits(m, 2); byte(45); digits(d, 2); byte(84)
            digits(rest / 3600, 2); byte(58); digits(rest / 60 % 60, 2); byte(58); digits(rest % 60, 2)
            byte(46); digits(Int64(max(0, min(999, milliseconds))), 3); byte(90)
            return i
        }
    }

    // MARK: - Calendar arithmetic (proleptic Gregorian, UTC)

    private static func split(_ seconds: Int64) -> (days: Int64, rest: Int64) {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        return (days, seconds - days * 86400)
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        var v: Int64 = 0
        for c in digits {
            guard c >= 48, c <= 57 else { return nil }
            v = v * 10 + Int64(c - 48)
        }
        return digits.isEmpty ? nil : v
    }

    private static func month(_ name: ArraySlice<UInt8>) -> Int64? {
        monthNames.firstIndex { $0[...] == name }.map { Int64($0 + 1) }
    }

    /// `HH:MM:SS` → seconds of the day.
    private static func clock(_ b: ArraySlice<UInt8>) -> Int64? {
        let s = b.startIndex
        guard b.count == 8, b[s + 2] == 58, b[s + 5] == 58, let h = number(b[s..<(s + 2)]),
              let m = number(b[(s + 3)..<(s + 5)]), let sec = number(b[(s + 6)..<(s + 8)]),
              h <= 23, m <= 59, sec <= 60
        else { return nil }
        return h * 3600 + m * 60 + sec
    }

    private static func epoch(year: Int64, month: Int64, day: Int64, time: Int64) -> Int64? {
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else { return nil }
        return days(fromCivil: year, month, day) * 86400 + time
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func days(fromCivil y: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y - 1 : y
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }
}
