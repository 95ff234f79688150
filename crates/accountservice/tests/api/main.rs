//! API tests: the real service on a random port over a fresh temporary database per test.

mod accounts;
mod components;
mod fleet;
mod grpc;
mod health;
mod helpers;
mod history;
mod lifecycle;
mod limits;
mod management;
mod metrics;
mod openapi;
mod progress;
mod properties;
mod reference;
mod release;
mod slot;
mod testability;
