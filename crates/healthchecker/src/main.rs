//! Tiny HTTP probe for Docker HEALTHCHECK.

fn main() {}
