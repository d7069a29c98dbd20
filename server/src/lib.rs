//! `evidentd`: the I/O around `evident-core` — gRPC services, the sled store, the sequencer.
