//! Evident's benchmarks: criterion micro-benchmarks in `benches/`, the load generator in `src/bin/`.
