//! Account lookup over an embedded database, with truthful health checks.
