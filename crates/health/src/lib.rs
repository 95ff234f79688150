//! Health checks for services: checks, aggregation, caching and HTTP handlers.
