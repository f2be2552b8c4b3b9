/// What this build is. The version is kept here, in the source, so a binary always knows it without build-time
/// code generation; `Dockerfile.*` default their `VERSION` build argument (the OCI label) to the same value,
/// which the image tests check.
public enum BuildInfo {
    public static let version = "0.1.0"
}
