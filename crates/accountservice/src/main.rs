//! Entry point of the account service.

fn main() {}
