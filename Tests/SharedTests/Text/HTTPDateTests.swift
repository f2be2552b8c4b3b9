import Foundation
import Testing
@testable import Shared

@Suite struct HTTPDateTests {
    @Test(arguments: [
        ("Sun, 06 Nov 1994 08:49:37 GMT", Int64(784_111_777)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784_111_777),
        ("Sun Nov  6 08:49:37 1994", 784_111_777),
        ("  Sun, 06 Nov 1994 08:49:37 GMT\t", 784_111_777),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
        ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799),
        ("Thursday, 01-Jan-70 00:00:00 GMT", 0),
        ("Saturday, 01-Jan-00 00:00:00 GMT", 946_684_800),
        ("Thu Jan  1 00:00:00 1970", 0),
        ("Mon Dec 31 23:59:60 2012", 1_356_998_400),
    ])
    func parsesTheThreeForms(text: String, seconds: Int64) {
        #expect(HTTPDate.parse(text) == seconds)
    }

    @Test(arguments: [
        "", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nox 1994 08:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun,06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMTX",
        "Sun, 0a Nov 1994 08:49:37 GMT", "Funday, 06-Nov-94 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
        "2009-10-12T17:50:30.000Z", "1994-11-06", "784111777",
    ])
    func refusesEverythingElse(text: String) {
        #expect(HTTPDate.parse(text) == nil)
    }

    @Test func formatsIMFFixdateAndRoundTrips() {
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(-1) == "Wed, 31 Dec 1969 23:59:59 GMT")
        #expect(HTTPDate.format(951_825_600) == "Tue, 29 Feb 2000 12:00:00 GMT")
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let t = Int64.random(in: -2_000_000_000...253_402_300_799, using: &random)
            #expect(HTTPDate.parse(HTTPDate.format(t)) == t)
            #expect(HTTPDate.parseISO8601(HTTPDate.formatISO8601(t)) == t)
        }
    }

    @Test func agreesWithFoundationOnIMFFixdate() {
        // An independent oracle for the calendar arithmetic (test only: Foundation is what production avoids).
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        for t in stride(from: Int64(-86_400 * 800), to: 86_400 * 365 * 80, by: 86_400 * 37 + 3_607) {
            #expect(HTTPDate.format(t) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(t))))
        }
    }

    @Test(arguments: [
        ("2009-10-12T17:50:30.000Z", Int64(1_255_369_830)),
        ("2009-10-12T17:50:30Z", 1_255_369_830),
        ("2009-10-12T17:50:30.123456Z", 1_255_369_830),
        ("1970-01-01T00:00:00.000Z", 0),
    ])
    func parsesISO8601(text: String, seconds: Int64) {
        #expect(HTTPDate.parseISO8601(text) == seconds)
    }

    @Test(arguments: ["2009-10-12 17:50:30Z", "2009-10-12T17:50:30", "2009-13-12T17:50:30Z", "2009-10-12T17:50:30.Z",
                      "2009-10-12T17:50:30+01:00", "09-10-12T17:50:30Z"])
    func refusesOtherISO8601(text: String) {
        #expect(HTTPDate.parseISO8601(text) == nil)
    }

    @Test func formatsISO8601AsS3Does() {
        #expect(HTTPDate.formatISO8601(1_255_369_830) == "2009-10-12T17:50:30.000Z")
        #expect(HTTPDate.formatISO8601(1_255_369_830, milliseconds: 7) == "2009-10-12T17:50:30.007Z")
    }
}
