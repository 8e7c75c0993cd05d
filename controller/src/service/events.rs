//! `GET /v1/flares/events`: the caller's flares as they change, as
//! server-sent events, for the dashboard.
//!
//! A stream opens with the tenant's queued and running flares, then sends
//! a `flare` event (a [`FlareDoc`]) whenever one of its flares is created,
//! starts, progresses or ends; changes that arrive together are sent once
//! each. A follower that fell more than the cluster's backlog behind gets a
//! `resync` event (reload the list) instead of what it missed. A stream
//! ends after [`MAX_STREAM`] or when the service stops; clients reconnect.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, sleep_until};

use super::Service;
use super::error::ApiError;
use crate::api::{ErrorBody, FlareDoc};

/// Longest a stream stays open; the client then opens another.
pub const MAX_STREAM: Duration = Duration::from_secs(300);

/// Streams open at once, of all tenants: each holds one of the requests
/// the service serves at once for as long as it stays open.
pub const MAX_STREAMS: usize = 32;

/// Most changes sent together.
const BATCH: usize = 256;

/// Server-sent events of the caller's flares.
#[utoipa::path(
    get,
    path = "/v1/flares/events",
    tag = "flares",
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "`event: flare` with a FlareDoc per change of one of the tenant's flares; `event: resync` \
                        when changes were missed (reload the list). Ends after five minutes.",
         body = FlareDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "Too many streams are open (`too_many_streams`)", body = ErrorBody),
    )
)]
pub async fn flare_events(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    let Ok(permit) = Arc::clone(&service.streams).try_acquire_owned() else {
        let message = format!("{MAX_STREAMS} event streams are open; try again later");
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", message));
    };
    // Subscribed before the snapshot, so nothing falls between the two.
    let changes = service.cluster.changes();
    let pending: VecDeque<Pending> =
        service.cluster.live_flares(&tenant).into_iter().map(|doc| Pending::Flare(Box::new(doc))).collect();
    let follow = Follow { service, tenant, changes, pending, ends: Instant::now() + MAX_STREAM, _permit: permit };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

enum Pending {
    Flare(Box<FlareDoc>),
    Resync,
}

struct Follow {
    service: Arc<Service>,
    tenant: String,
    changes: broadcast::Receiver<Arc<str>>,
    pending: VecDeque<Pending>,
    ends: Instant,
    /// Held for as long as the stream is open.
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    /// The next event, or `None` when the stream is to end.
    async fn next(&mut self) -> Option<Event> {
        loop {
            match self.pending.pop_front() {
                Some(Pending::Flare(doc)) => return Event::default().event("flare").json_data(doc).ok(),
                Some(Pending::Resync) => return Some(Event::default().event("resync").data("{}")),
                None => {}
            }
            let first = tokio::select! {
                changed = self.changes.recv() => changed,
                () = sleep_until(self.ends) => return None,
                () = self.service.stopping.cancelled() => return None,
            };
            let mut ids = BTreeSet::new();
            let mut next = first;
            loop {
                match next {
                    Ok(id) => {
                        ids.insert(id);
                    }
                    Err(RecvError::Lagged(_)) => self.pending.push_back(Pending::Resync),
                    Err(RecvError::Closed) => return None,
                }
                if ids.len() >= BATCH {
                    break;
                }
                match self.changes.try_recv() {
                    Ok(id) => next = Ok(id),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => next = Err(RecvError::Lagged(n)),
                    Err(_) => break,
                }
            }
            for id in ids {
                // A flare pruned meanwhile, or a store that fails, has nothing
                // to show.
                if let Ok(Some(record)) = self.service.cluster.flare(&id)
                    && record.tenant == self.tenant
                {
                    self.pending.push_back(Pending::Flare(Box::new(record.doc)));
                }
            }
        }
    }
}
