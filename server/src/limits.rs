//! Request limits: a rate (token bucket) and a concurrency cap per client, and a global
//! concurrency cap. A request over a limit gets `RESOURCE_EXHAUSTED` naming the limit; the
//! other clients keep their share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::config::LimitsConfig;

/// A client's token bucket and concurrency.
#[derive(Debug)]
struct ClientState {
    tokens: f64,
    refilled: Instant,
    in_flight: Arc<Semaphore>,
}

/// The limits of a running server.
#[derive(Debug)]
pub struct Limiter {
    config: LimitsConfig,
    global: Arc<Semaphore>,
    clients: Mutex<Buckets>,
}

/// The token buckets: one per client, one for all.
#[derive(Debug)]
struct Buckets {
    clients: HashMap<String, ClientState>,
    /// Tokens of the global bucket, and when it was last refilled.
    global: (f64, Instant),
}

/// Held while a request runs; frees its concurrency slots when dropped.
#[derive(Debug)]
pub struct Permit {
    _global: OwnedSemaphorePermit,
    _client: OwnedSemaphorePermit,
}

impl Limiter {
    /// Limits as configured.
    pub fn new(config: &LimitsConfig) -> Limiter {
        Limiter {
            config: config.clone(),
            global: Arc::new(Semaphore::new(config.max_concurrent)),
            clients: Mutex::new(Buckets {
                clients: HashMap::new(),
                global: (config.burst_global, Instant::now()),
            }),
        }
    }

    /// Admits one request of `client`, or says which limit it exceeds.
    pub fn admit(&self, client: &str) -> Result<Permit, Status> {
        let in_flight = {
            let mut buckets = self
                .clients
                .lock()
                .map_err(|_| Status::internal("the limiter's lock was poisoned by a panic"))?;
            let now = Instant::now();
            let (tokens, refilled) = buckets.global;
            let tokens = (tokens
                + now.duration_since(refilled).as_secs_f64() * self.config.rate_global)
                .min(self.config.burst_global);
            buckets.global = (tokens, now);
            if tokens < 1.0 {
                crate::metrics::rate_limited();
                return Err(Status::resource_exhausted(format!(
                    "the server is over its rate limit of {} requests/s for all clients \
                     (limits.rate_global): retry shortly",
                    self.config.rate_global
                )));
            }
            let state = buckets
                .clients
                .entry(client.to_owned())
                .or_insert_with(|| ClientState {
                    tokens: self.config.burst_per_client,
                    refilled: now,
                    in_flight: Arc::new(Semaphore::new(self.config.max_concurrent_per_client)),
                });
            let elapsed = now.duration_since(state.refilled).as_secs_f64();
            state.tokens = (state.tokens + elapsed * self.config.rate_per_client)
                .min(self.config.burst_per_client);
            state.refilled = now;
            if state.tokens < 1.0 {
                crate::metrics::rate_limited();
                return Err(Status::resource_exhausted(format!(
                    "{client} is over its rate limit of {} requests/s with bursts of {} \
                     (limits.rate_per_client, limits.burst_per_client): slow down and retry",
                    self.config.rate_per_client, self.config.burst_per_client
                )));
            }
            state.tokens -= 1.0;
            let in_flight = state.in_flight.clone();
            buckets.global.0 -= 1.0;
            in_flight
        };
        let client_permit = in_flight.try_acquire_owned().map_err(|_| {
            crate::metrics::rate_limited();
            Status::resource_exhausted(format!(
                "{client} already has {} requests in flight (limits.max_concurrent_per_client)",
                self.config.max_concurrent_per_client
            ))
        })?;
        let global_permit = self.global.clone().try_acquire_owned().map_err(|_| {
            crate::metrics::rate_limited();
            Status::resource_exhausted(format!(
                "the server has {} requests in flight (limits.max_concurrent): retry shortly",
                self.config.max_concurrent
            ))
        })?;
        Ok(Permit {
            _global: global_permit,
            _client: client_permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: f64, burst: f64, per_client: usize, global: usize) -> Limiter {
        Limiter::new(&LimitsConfig {
            rate_per_client: rate,
            burst_per_client: burst,
            max_concurrent_per_client: per_client,
            max_concurrent: global,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn all_clients_together_are_held_to_the_global_rate() {
        let l = Limiter::new(&LimitsConfig {
            rate_global: 0.001,
            burst_global: 4.0,
            ..LimitsConfig::default()
        });
        for client in ["a", "b", "c", "d"] {
            drop(l.admit(client).unwrap());
        }
        let err = l.admit("e").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("limits.rate_global"), "{err}");
    }

    #[test]
    fn a_client_over_its_rate_is_refused_and_others_are_not() {
        let l = limits(0.001, 3.0, 100, 100);
        for _ in 0..3 {
            drop(l.admit("a").unwrap());
        }
        let err = l.admit("a").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("limits.rate_per_client"), "{err}");
        assert!(l.admit("b").is_ok(), "another client keeps its share");
    }

    #[test]
    fn concurrency_is_capped_per_client_and_globally() {
        let l = limits(1e9, 1e9, 2, 3);
        let a1 = l.admit("a").unwrap();
        let _a2 = l.admit("a").unwrap();
        let err = l.admit("a").unwrap_err();
        assert!(err.message().contains("max_concurrent_per_client"), "{err}");
        let _b1 = l.admit("b").unwrap();
        let err = l.admit("c").unwrap_err();
        assert!(err.message().contains("limits.max_concurrent)"), "{err}");
        drop(a1);
        assert!(l.admit("c").is_ok(), "a finished request frees its slot");
    }
}
