/// The writer's check of a CompleteMultipartUpload (docs/FORMAT.md §9.3), on the stored sizes of the parts the
/// client lists (from the backend's ListParts): every part must be one the gateway sealed, and the list must
/// not be one that a reader could take for uniform parts without it being so.
///
/// Readers locate parts by assuming uniform sizes and checking the header where a part must then start
/// (`MultipartLocator`). A header found at the uniform position `(k−1)·s` proves that the parts before it take
/// `(k−1)·s` stored bytes, but not that they hold `(k−1)·S` plaintext bytes: parts of other sizes can add up to
/// the same stored size with a different number of chunks. Such lists are refused here, so that for every
/// object the gateway completes, "stored prefix on the grid" implies "plaintext prefix on the grid". Uniform
/// lists are never refused; others only when their sizes compensate exactly.
public enum PartListCheck {
    public enum Problem: Error, Equatable, Sendable {
        /// The stored size is not `36 + L(P)` for any `P`: the part was not written through an encrypting gateway.
        case notGatewayPart(partNumber: Int, storedSize: Int)
        /// The parts before the part at `index` take as many stored bytes as uniform parts would, with other plaintext.
        case ambiguousSizes(partNumber: Int)
    }

    /// The plaintext length of a part of `storedSize` bytes, nil when no writer produces that size.
    public static func plaintextLength(storedSize: Int, layout: ChunkLayout) -> Int? {
        guard storedSize >= PartHeader.size else { return nil }
        return try? layout.plaintextLength(ciphertextLength: storedSize - PartHeader.size)
    }

    /// - Parameter parts: part number and stored size of each listed part, in the order of the list.
    /// - Returns: the plaintext length of each part.
    public static func check(_ parts: [(partNumber: Int, storedSize: Int)], layout: ChunkLayout) -> Result<[Int], Problem> {
        var lengths: [Int] = []
        lengths.reserveCapacity(parts.count)
        for part in parts {
            guard let length = plaintextLength(storedSize: part.storedSize, layout: layout) else {
                return .failure(.notGatewayPart(partNumber: part.partNumber, storedSize: part.storedSize))
            }
            lengths.append(length)
        }
        guard let first = parts.first else { return .success([]) }
        let unitStored = first.storedSize
        let unitPlain = lengths[0]
        var storedPrefix = 0
        var plainPrefix = 0
        for k in 1..<parts.count {
            storedPrefix += parts[k - 1].storedSize
            plainPrefix += lengths[k - 1]
            if storedPrefix == k * unitStored && plainPrefix != k * unitPlain {
                return .failure(.ambiguousSizes(partNumber: parts[k].partNumber))
            }
        }
        return .success(lengths)
    }
}
