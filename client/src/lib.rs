//! The Evident client library: what a pipeline or release tool links to talk to the ledger.
