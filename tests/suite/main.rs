//! The integration suite, one test binary: each module is a capability,
//! tested through the real server (started in-process on an ephemeral
//! port with a temporary data directory, or as the real binary where a
//! test kills it). One binary instead of one per file: each would link
//! the whole service again, which was most of the suite's build time.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

mod analysis;
mod auth;
mod authorship;
mod bad_input;
mod blob_store;
mod browser;
mod catalog;
mod contract;
mod delivery;
mod durability;
mod folders;
mod imports;
mod inline;
mod integrity;
mod jobs;
mod listing;
mod metrics;
mod migrations;
mod privacy;
mod quota;
mod races;
mod renditions;
mod replicas;
mod resumable;
mod s3;
mod server;
mod slots;
mod storage_failures;
mod tenancy;
mod tls;
mod upload;
