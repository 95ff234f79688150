//! `Connection: close` on every answer once the drain has begun, so keep-alive clients move to
//! another instance instead of sending their next request to one that is stopping. When the
//! drain begins and how long it lasts is the stop sequence's business (`crate::lifecycle`).

use axum::{
    http::{HeaderValue, header},
    response::Response,
};

use crate::draining::Draining;

/// Marks `response` `Connection: close` if the drain has begun.
pub fn close_if_draining(draining: &Draining, response: &mut Response) {
    if draining.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
