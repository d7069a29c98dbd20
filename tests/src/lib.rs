//! End-to-end tests of Evident live in `tests/`; this library holds their shared harness.
