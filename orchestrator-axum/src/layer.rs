//! The receiver alone, for an application that already has its own axum or tower stack.
//!
//! - [`webhook_service`]: a service answering the receiver on whatever route it is mounted at
//!   (`Router::route_service("/hooks/github", webhook_service(state))`).
//! - [`WebhookLayer`]: a tower layer that takes `POST <config.webhook_path>` for itself and passes
//!   every other request through to the application untouched.
//!
//! Both carry the receiver's whole behaviour: correlation ids, the rate limit, the body limit,
//! the spec's codes and error bodies.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use futures::future::BoxFuture;
use http::{Method, Request};
use tower::{Layer, Service, ServiceExt};

use crate::correlation::CorrelationLayer;
use crate::rate_limit_middleware::webhook_limit;
use crate::routes::webhook::receive;
use crate::state::AppState;

/// The receiver as a service (POST only; other methods get 405 with the error body).
pub fn webhook_service(state: AppState) -> MethodRouter {
    post(receive)
        .layer::<_, Infallible>(from_fn_with_state(state.clone(), webhook_limit))
        .with_state(state)
        .layer::<_, Infallible>(crate::error::catch_panic())
        .layer::<_, Infallible>(CorrelationLayer)
}

/// Intercepts `POST <webhook_path>` and serves it with the receiver.
#[derive(Clone)]
pub struct WebhookLayer {
    path: Arc<str>,
    service: MethodRouter,
}

impl std::fmt::Debug for WebhookLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookLayer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebhookLayer {
    /// A layer serving the receiver at `state.config().webhook_path`.
    pub fn new(state: AppState) -> Self {
        Self {
            path: state.config().webhook_path.as_str().into(),
            service: webhook_service(state),
        }
    }
}

impl<S> Layer<S> for WebhookLayer {
    type Service = WebhookService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WebhookService {
            inner,
            path: self.path.clone(),
            service: self.service.clone(),
        }
    }
}

/// The service of [`WebhookLayer`].
#[derive(Clone)]
pub struct WebhookService<S> {
    inner: S,
    path: Arc<str>,
    service: MethodRouter,
}

impl<S> std::fmt::Debug for WebhookService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for WebhookService<S>
where
    S: Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if req.method() == Method::POST && req.uri().path() == &*self.path {
            let service = self.service.clone();
            Box::pin(async move {
                match service.oneshot(req).await {
                    Ok(response) => Ok(response),
                    Err(never) => match never {},
                }
            })
        } else {
            Box::pin(self.inner.call(req))
        }
    }
}
