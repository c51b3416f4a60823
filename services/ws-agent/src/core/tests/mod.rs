//! The core's unit tests over in-memory fakes ([`crate::testing`]).

mod change;
mod dedupe;
mod events;
mod evict;
mod feed;
mod files;
mod join;
mod pages;
mod read;
mod revocation;
mod search;
mod send;
mod standing;
