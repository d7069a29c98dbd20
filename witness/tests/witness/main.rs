//! The witness end to end: a real log's checkpoints sent over TCP to a witness served on
//! 127.0.0.1:0, in process or as the real binary.

mod harness;

mod add_checkpoint;
mod concurrency;
mod monitoring;
mod refusals;
mod restart;
