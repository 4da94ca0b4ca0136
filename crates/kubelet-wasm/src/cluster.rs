//! Cluster mode (placeholder while the standalone logic settles).
