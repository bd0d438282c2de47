//! Webhook subscriptions and their durable outbox of deliveries.

use sqlx::{any::AnyRow, AnyConnection, Row};

use crate::domain::{ChatroomId, OrganizationId};

#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub organization_id: Option<OrganizationId>,
    /// Event type names (`member.banned`, ...).
    pub event_types: Vec<String>,
    pub created_at: i64,
}

fn subscription(row: AnyRow) -> sqlx::Result<Subscription> {
    let types: String = row.try_get("event_types")?;
    Ok(Subscription {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        organization_id: row.try_get("organization_id")?,
        event_types: serde_json::from_str(&types).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn insert_subscription(conn: &mut AnyConnection, sub: &Subscription) -> sqlx::Result<()> {
    let types = serde_json::to_string(&sub.event_types).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO webhook_subscriptions (id, url, secret, organization_id, event_types, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&sub.id)
    .bind(&sub.url)
    .bind(&sub.secret)
    .bind(sub.organization_id)
    .bind(types)
    .bind(sub.created_at)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

const SUBSCRIPTION_COLUMNS: &str = "id, url, secret, organization_id, event_types, created_at";

/// Every subscription, oldest first.
pub async fn subscriptions(conn: &mut AnyConnection) -> sqlx::Result<Vec<Subscription>> {
    sqlx::query(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id"))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(subscription)
        .collect()
}

pub async fn find_subscription(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<Subscription>> {
    sqlx::query(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(subscription)
        .transpose()
}

/// Removes the subscription and its deliveries, delivered or not; false when there was none.
pub async fn delete_subscription(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM webhook_deliveries WHERE subscription_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let done =
        sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(done.rows_affected() > 0)
}

pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub subscription_id: &'a str,
    pub chatroom_id: ChatroomId,
    pub event_type: &'a str,
    pub source: &'a str,
    pub payload: &'a str,
    pub created_at: i64,
}

/// Queues a delivery; false when this subscription has the event already (emitted again
/// after a crash, or by a retried transaction).
pub async fn insert_delivery(conn: &mut AnyConnection, delivery: &NewDelivery<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, subscription_id, chatroom_id, event_type, source, payload, \
           created_at, status, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $7) \
         ON CONFLICT (subscription_id, source, event_type) DO NOTHING",
    )
    .bind(delivery.id)
    .bind(delivery.subscription_id)
    .bind(delivery.chatroom_id)
    .bind(delivery.event_type)
    .bind(delivery.source)
    .bind(delivery.payload)
    .bind(delivery.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A delivery whose time has come, with where it goes.
#[derive(Clone, Debug)]
pub struct Due {
    pub seq: i64,
    pub id: String,
    pub subscription_id: String,
    pub url: String,
    pub secret: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Deliveries due now, each the oldest pending one of its subscription and room (so a room's
/// events arrive in order), and held by nobody.
pub async fn due(conn: &mut AnyConnection, now: i64, limit: i64) -> sqlx::Result<Vec<Due>> {
    sqlx::query(
        "SELECT d.seq, d.id, d.subscription_id, s.url, s.secret, d.payload, d.attempts, d.created_at \
         FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND COALESCE(d.claimed_until, 0) < $1 \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.status = 'pending' \
             AND e.subscription_id = d.subscription_id AND e.chatroom_id = d.chatroom_id AND e.seq < d.seq) \
         ORDER BY d.seq LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| {
        Ok(Due {
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            url: row.try_get("url")?,
            secret: row.try_get("secret")?,
            payload: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .collect()
}

/// Holds a due delivery until `until` for one attempt; false when another worker took it.
pub async fn claim(conn: &mut AnyConnection, seq: i64, now: i64, until: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET claimed_until = $3 \
         WHERE seq = $1 AND status = 'pending' AND COALESCE(claimed_until, 0) < $2",
    )
    .bind(seq)
    .bind(now)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// How an attempt ended.
pub struct Attempt<'a> {
    pub at: i64,
    pub status_code: Option<u16>,
    pub error: Option<&'a str>,
    /// Delivered; otherwise retried at `retry_at`, or given up when that is `None`.
    pub delivered: bool,
    pub retry_at: Option<i64>,
}

pub async fn record_attempt(conn: &mut AnyConnection, seq: i64, attempt: &Attempt<'_>) -> sqlx::Result<()> {
    let status = match (attempt.delivered, attempt.retry_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_attempt_at = $3, \
           last_status_code = $4, last_error = $5, next_attempt_at = COALESCE($6, next_attempt_at), \
           delivered_at = CASE WHEN $2 = 'delivered' THEN $3 ELSE NULL END, claimed_until = NULL \
         WHERE seq = $1",
    )
    .bind(seq)
    .bind(status)
    .bind(attempt.at)
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.error)
    .bind(attempt.retry_at)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// One delivery as the log shows it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub seq: i64,
    pub id: String,
    pub chatroom_id: ChatroomId,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// The subscription's deliveries, newest first, below `before` (a `seq`) when given.
pub async fn deliveries(
    conn: &mut AnyConnection,
    subscription: &str,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query(
        "SELECT seq, id, chatroom_id, event_type, status, attempts, created_at, next_attempt_at, \
           last_attempt_at, last_status_code, last_error, delivered_at \
         FROM webhook_deliveries WHERE subscription_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(subscription)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| {
        let status: String = row.try_get("status")?;
        Ok(Delivery {
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            chatroom_id: row.try_get("chatroom_id")?,
            event_type: row.try_get("event_type")?,
            next_attempt_at: if status == "pending" { Some(row.try_get("next_attempt_at")?) } else { None },
            status,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
            last_attempt_at: row.try_get("last_attempt_at")?,
            last_status_code: row.try_get("last_status_code")?,
            last_error: row.try_get("last_error")?,
            delivered_at: row.try_get("delivered_at")?,
        })
    })
    .collect()
}
