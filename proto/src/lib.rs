//! Pressrun gRPC contracts, package `pressrun.v1` (filled by the rendering-farm issue).
