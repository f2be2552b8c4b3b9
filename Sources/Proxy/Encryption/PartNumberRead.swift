/// A GET or HEAD with `?partNumber=N` of an encrypted object, as S3 serves it: a ranged read of the object's
/// `N`-th part (`206`, `Content-Range`, and `x-amz-mp-parts-count` for a multipart object). The backend cannot
/// serve it itself: its parts hold ciphertext behind part headers (docs/FORMAT.md §9), so the gateway turns the
/// part into the plaintext range it covers and reads that range. Pure: the caller supplies the plaintext size
/// (a single-part object) or the part geometry (a multipart one).
///
/// Parts are counted by position, 1…count, as S3 numbers the parts of a completed object.
enum PartNumberRead: Equatable {
    /// Plaintext bytes `first...last` (inclusive); `partsCount` is the object's part count (nil: a single-part
    /// object, which S3 answers without `x-amz-mp-parts-count`).
    case range(first: Int, last: Int, partsCount: Int?)
    /// The part holds no byte (an empty object, or an empty last part): answered with no body and no
    /// `Content-Range`, which cannot express an empty range.
    case empty(partsCount: Int?)
    /// No such part: `416 InvalidPartNumber`.
    case notSatisfiable

    /// Part `partNumber` of a single-part object of `plaintextLength` bytes: only part 1, the whole object.
    static func single(partNumber: Int, plaintextLength: Int) -> PartNumberRead {
        guard partNumber == 1 else { return .notSatisfiable }
        return plaintextLength == 0 ? .empty(partsCount: nil) : .range(first: 0, last: plaintextLength - 1, partsCount: nil)
    }

    /// Part `partNumber` of a multipart object of `geometry`.
    static func multipart(partNumber: Int, geometry: MultipartGeometry) -> PartNumberRead {
        guard partNumber >= 1, partNumber <= geometry.count else { return .notSatisfiable }
        let extent = geometry.extent(partNumber)
        guard extent.plaintextLength > 0 else { return .empty(partsCount: geometry.count) }
        return .range(first: extent.plaintextOffset, last: extent.plaintextOffset + extent.plaintextLength - 1,
                      partsCount: geometry.count)
    }

    /// The `Range` header the read is planned with (nil for an empty part).
    var rangeHeader: String? {
        guard case .range(let first, let last, _) = self else { return nil }
        return "bytes=\(first)-\(last)"
    }

    var partsCount: Int? {
        switch self {
        case .range(_, _, let count), .empty(let count): return count
        case .notSatisfiable: return nil
        }
    }
}
