//! The API layer: the gRPC service and what stands in front of it — who is calling
//! (`auth`), how much they may ask (`limits`), the pages of list calls (`paging`), the
//! connections (`accept`), transport security (`tls`), and the plain HTTP listeners
//! beside gRPC (`http`: metrics and tiles; `tiles`: the log as C2SP tlog-tiles).

pub(crate) mod accept;
pub mod auth;
pub(crate) mod http;
pub(crate) mod limits;
pub(crate) mod paging;
pub mod reason;
pub(crate) mod service;
pub(crate) mod tiles;
pub mod tls;
