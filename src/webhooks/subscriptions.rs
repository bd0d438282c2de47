//! Subscriptions as the backend makes them: a receiver URL, optionally one organization's
//! events only, the event types wanted, and the signing secret shown once.

use super::{signing, target, EventType};
use crate::{
    domain::OrganizationId,
    state::AppState,
    store::webhooks::{self, Delivery, Subscription},
};

/// Subscriptions the service keeps at most: each event is queued once per subscription.
pub const MAX_SUBSCRIPTIONS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook subscription {0}")]
    NotFound(String),
    #[error("there are {MAX_SUBSCRIPTIONS} webhook subscriptions already; delete one first")]
    TooMany,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct NewSubscription {
    pub url: String,
    pub organization_id: Option<OrganizationId>,
    /// Left out: every event type but `message.created`.
    pub event_types: Option<Vec<String>>,
}

fn parse_types(names: Option<Vec<String>>) -> Result<Vec<EventType>, SubscriptionError> {
    let Some(names) = names else { return Ok(EventType::defaults()) };
    if names.is_empty() {
        return Err(SubscriptionError::Invalid(
            "eventTypes is empty; leave it out for the default set".into(),
        ));
    }
    let mut kinds = names
        .iter()
        .map(|name| {
            EventType::parse(name).ok_or_else(|| {
                let known: Vec<_> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
                SubscriptionError::Invalid(format!(
                    "unknown event type {name:?}; known: {}",
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

pub async fn create(state: &AppState, new: NewSubscription) -> Result<Subscription, SubscriptionError> {
    let url = target::parse_url(new.url.trim(), state.config.webhooks.allow_private)
        .map_err(SubscriptionError::Invalid)?;
    if new.organization_id.is_some_and(|org| org < 1) {
        return Err(SubscriptionError::Invalid("organizationID must be a positive integer".into()));
    }
    let kinds = parse_types(new.event_types)?;
    let mut conn = state.store.pool().acquire().await?;
    if webhooks::subscriptions(&mut conn).await?.len() >= MAX_SUBSCRIPTIONS {
        return Err(SubscriptionError::TooMany);
    }
    let subscription = Subscription {
        id: format!("wh_{}", hex::encode(rand::random::<[u8; 12]>())),
        url: url.to_string(),
        secret: signing::new_secret(),
        organization_id: new.organization_id,
        event_types: kinds.iter().map(|kind| kind.as_str().to_owned()).collect(),
        created_at: state.clock.now_ms(),
    };
    webhooks::insert_subscription(&mut conn, &subscription).await?;
    tracing::info!(subscription = subscription.id, url = subscription.url, "webhook subscription made");
    Ok(subscription)
}

pub async fn list(state: &AppState) -> Result<Vec<Subscription>, SubscriptionError> {
    let mut conn = state.store.pool().acquire().await?;
    Ok(webhooks::subscriptions(&mut conn).await?)
}

pub async fn find(state: &AppState, id: &str) -> Result<Subscription, SubscriptionError> {
    let mut conn = state.store.pool().acquire().await?;
    webhooks::find_subscription(&mut conn, id)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))
}

/// Ends the subscription: nothing more is sent, pending deliveries included.
pub async fn delete(state: &AppState, id: &str) -> Result<(), SubscriptionError> {
    let mut conn = state.store.pool().acquire().await?;
    if !webhooks::delete_subscription(&mut conn, id).await? {
        return Err(SubscriptionError::NotFound(id.to_owned()));
    }
    tracing::info!(subscription = id, "webhook subscription deleted");
    Ok(())
}

/// The subscription's deliveries, newest first; `before` pages on (a delivery's `seq`).
pub async fn deliveries(
    state: &AppState,
    id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, SubscriptionError> {
    let mut conn = state.store.pool().acquire().await?;
    if webhooks::find_subscription(&mut conn, id).await?.is_none() {
        return Err(SubscriptionError::NotFound(id.to_owned()));
    }
    Ok(webhooks::deliveries(&mut conn, id, before, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_known_deduplicated_or_the_default_set() {
        assert_eq!(parse_types(None).unwrap(), EventType::defaults());
        let kinds =
            parse_types(Some(vec!["member.banned".into(), "room.created".into(), "member.banned".into()]));
        assert_eq!(kinds.unwrap(), vec![EventType::RoomCreated, EventType::MemberBanned]);
        assert!(parse_types(Some(vec![])).is_err());
        assert!(parse_types(Some(vec!["room.renamed".into()])).is_err());
    }
}
