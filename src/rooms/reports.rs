//! Reported messages and the moderation queue: reports by app users through the API and by
//! anyone in a Matrix client (the homeserver keeps those for its admins and pushes nothing:
//! they are read from its admin API), resolved by a moderator with an action.

use std::collections::HashMap;

use ruma::OwnedRoomId;
use serde_json::{json, Value};

use super::{load, messages, moderation, RoomError, RoomResult};
use crate::{
    domain::{AppUserId, ChatroomId},
    matrix::EventReport,
    rooms::moderation::Actor,
    state::AppState,
    store::{
        chatrooms,
        reports::{self, NewReport, Report, ReportSource, ReportsQuery, Resolution},
    },
    webhooks::{self, EventType, Outgoing, RoomRef},
};

/// Characters of a report's reason and of a resolution's note.
pub const MAX_REASON_CHARS: usize = 1000;

/// The name of the homeserver report feed's cursor.
const FEED: &str = "event_reports";

/// A reason or note: trimmed, empty is none, at most [`MAX_REASON_CHARS`].
pub fn parse_text(field: &str, text: Option<String>) -> RoomResult<Option<String>> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else { return Ok(None) };
    let chars = text.chars().count();
    if chars > MAX_REASON_CHARS || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(RoomError::Invalid(format!(
            "{field} is {chars} characters long; at most {MAX_REASON_CHARS}, no control characters"
        )));
    }
    Ok(Some(text))
}

/// What resolving a report does to the reported message or its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Dismiss,
    Redact,
    Mute,
    Ban,
}

impl Action {
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Dismiss, Self::Redact, Self::Mute, Self::Ban].into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dismiss => "dismiss",
            Self::Redact => "redact",
            Self::Mute => "mute",
            Self::Ban => "ban",
        }
    }
}

/// Reports of one message that are open together or were resolved together, with the message
/// as the homeserver has it now: an entry of the queue.
pub struct ReportView {
    /// Its room, message and state are the entry's.
    pub newest: Report,
    /// The entry's other reports, newest first.
    pub older: Vec<Report>,
    /// `None` once redacted, in an encrypted room, or gone from the homeserver.
    pub body: Option<String>,
    pub redacted: bool,
    pub sender_id: Option<AppUserId>,
}

/// An app user holding a role in the room reports one of its messages. `AlreadyReported` when their report of it
/// is still open.
pub async fn report(
    state: &AppState,
    id: ChatroomId,
    event: &ruma::EventId,
    reporter: AppUserId,
    reason: Option<String>,
) -> RoomResult<ReportView> {
    let room = load(state, id).await?;
    if room.roles.role_of(reporter).is_none() {
        return Err(RoomError::HoldsNoRole { room: id, user: reporter });
    }
    let matrix_room =
        room.matrix_room_id.clone().ok_or_else(|| RoomError::NoSuchMessage(event.to_string()))?;
    let message = messages::message_event(state, &matrix_room, event).await?;
    let sender = message["sender"].as_str().unwrap_or_default().to_owned();
    let reporter_id = state.homeserver.ids().user_id(reporter).map_err(RoomError::Invalid)?;
    let new = NewReport {
        chatroom_id: id,
        event_id: event.as_str(),
        sender: &sender,
        reporter: reporter_id.as_str(),
        reporter_user_id: Some(reporter),
        reason: reason.as_deref(),
        source: ReportSource::Api,
        homeserver_report_id: None,
        at: state.clock.now_ms(),
    };
    let mut tx = state.store.begin().await?;
    // One open report per user and message, wherever they made it (their client's included).
    let already = reports::open_by(&mut tx, id, event.as_str(), reporter_id.as_str()).await?;
    let inserted = if already { None } else { reports::insert(&mut tx, &new).await? };
    let Some(report_id) = inserted else {
        return Err(RoomError::AlreadyReported(event.to_string()));
    };
    emit_reported(&mut tx, &RoomRef::of(&room), report_id, &new).await?;
    tx.commit().await?;
    tracing::info!(chatroom = id, event = %event, report = report_id, "message reported");
    let report = find(state, report_id).await?;
    Ok(view(state, report, Vec::new(), Some(&message)))
}

async fn emit_reported(
    conn: &mut sqlx::AnyConnection,
    room: &RoomRef,
    report_id: i64,
    report: &NewReport<'_>,
) -> sqlx::Result<()> {
    let data = json!({"reportID": report_id, "eventID": report.event_id, "sender": report.sender,
        "reporter": report.reporter, "reporterID": report.reporter_user_id, "reason": report.reason,
        "source": report.source.as_str()});
    let data = data.as_object().cloned().unwrap_or_default();
    let source = format!("report/{report_id}");
    webhooks::emit(
        conn,
        Outgoing { kind: EventType::MessageReported, room, source: &source, data, at: report.at },
    )
    .await
    .map(|_| ())
}

/// A page of the queue: one entry per reported message (its open reports, or those one
/// resolution closed), newest report first; and how many entries there are.
pub async fn queue(state: &AppState, query: &ReportsQuery) -> RoomResult<(Vec<ReportView>, i64)> {
    let mut conn = state.store.reader().acquire().await?;
    let (found, total) = reports::list(&mut conn, query).await?;
    drop(conn);
    // A message's open and resolved entries, several messages of one room: each read once a page.
    let mut rooms: HashMap<ChatroomId, Option<OwnedRoomId>> = HashMap::new();
    let mut read: HashMap<(ChatroomId, String), Option<Value>> = HashMap::new();
    let mut views = Vec::with_capacity(found.len());
    for group in found {
        let mut group = group.into_iter();
        let Some(report) = group.next() else { continue };
        let key = (report.chatroom_id, report.event_id.clone());
        if !read.contains_key(&key) {
            let matrix = match rooms.get(&report.chatroom_id) {
                Some(matrix) => matrix.clone(),
                None => {
                    let matrix =
                        load(state, report.chatroom_id).await.ok().and_then(|room| room.matrix_room_id);
                    rooms.insert(report.chatroom_id, matrix.clone());
                    matrix
                }
            };
            let message = read_message(state, matrix.as_deref(), &report.event_id).await;
            read.insert(key.clone(), message);
        }
        views.push(view(state, report, group.collect(), read[&key].as_ref()));
    }
    Ok((views, total))
}

pub async fn find(state: &AppState, id: i64) -> RoomResult<Report> {
    let mut conn = state.store.reader().acquire().await?;
    reports::find(&mut conn, id).await?.ok_or(RoomError::NoSuchReport(id))
}

/// The reported message as the homeserver has it now, read as the bot; a failure to read
/// shows as no message: the queue stays usable while the homeserver is down.
async fn read_message(state: &AppState, room: Option<&ruma::RoomId>, event: &str) -> Option<Value> {
    let event = ruma::EventId::parse(event).ok()?;
    state.homeserver.event(room?, &event).await.ok().flatten()
}

/// The reports of a message with the message (`None`: not readable).
fn view(state: &AppState, newest: Report, older: Vec<Report>, message: Option<&Value>) -> ReportView {
    let redacted = message.is_some_and(|m| !m["unsigned"]["redacted_because"].is_null());
    let body = message.and_then(|m| m["content"]["body"].as_str()).map(str::to_owned);
    let sender_id =
        ruma::UserId::parse(&newest.sender).ok().and_then(|user| state.homeserver.ids().app_user(&user));
    ReportView { newest, older, body, redacted, sender_id }
}

/// What a moderator decided.
pub struct Decision {
    pub action: Action,
    pub duration_secs: Option<i64>,
    pub note: Option<String>,
}

/// Resolves a report: claims every open report of that message (a concurrent resolution then
/// finds it resolved), applies the action through the moderation layer (the actor's rank rules
/// as anywhere; when it fails, the reports are open again), and closes the homeserver's copies.
pub async fn resolve(
    state: &AppState,
    report_id: i64,
    actor: Actor,
    decision: Decision,
) -> RoomResult<ReportView> {
    let report = find(state, report_id).await?;
    if report.resolution.is_some() {
        return Err(RoomError::ReportResolved(report_id));
    }
    let id = report.chatroom_id;
    let sender =
        ruma::UserId::parse(&report.sender).ok().and_then(|user| state.homeserver.ids().app_user(&user));
    let room = load(state, id).await?;
    // Refused before anything is claimed; the ranks are the moderation layer's to check.
    if matches!(decision.action, Action::Mute | Action::Ban) && sender.is_none() {
        return Err(RoomError::Invalid(format!(
            "{} is not one of the app's users: only a redaction applies",
            report.sender
        )));
    }
    let resolution = Resolution {
        at: state.clock.now_ms(),
        by: actor.key.clone(),
        action: decision.action.as_str().to_owned(),
        note: decision.note.clone(),
    };
    let mut tx = state.store.begin().await?;
    let claimed = reports::resolve_message(&mut tx, id, &report.event_id, &resolution).await?;
    if !claimed.iter().any(|(claimed, _)| *claimed == report_id) {
        return Err(RoomError::ReportResolved(report_id));
    }
    tx.commit().await?;
    if let Err(e) = act(state, &report, sender, actor, &decision).await {
        let ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
        let mut tx = state.store.begin().await?;
        reports::reopen(&mut tx, &ids).await?;
        tx.commit().await?;
        return Err(e);
    }
    tracing::info!(
        chatroom = id,
        report = report_id,
        action = decision.action.as_str(),
        closed = claimed.len(),
        "report resolved"
    );
    for homeserver_report in claimed.into_iter().filter_map(|(_, homeserver)| homeserver) {
        close_on_homeserver(state, homeserver_report).await;
    }
    let mut conn = state.store.reader().acquire().await?;
    let mut closed = reports::group_of(&mut conn, report_id).await?.into_iter();
    drop(conn);
    // None only when the room was deleted meanwhile.
    let newest = closed.next().ok_or(RoomError::NoSuchReport(report_id))?;
    let message = read_message(state, room.matrix_room_id.as_deref(), &report.event_id).await;
    Ok(view(state, newest, closed.collect(), message.as_ref()))
}

/// What the decision does to the reported message or its sender.
async fn act(
    state: &AppState,
    report: &Report,
    sender: Option<AppUserId>,
    actor: Actor,
    decision: &Decision,
) -> RoomResult<()> {
    let id = report.chatroom_id;
    // Shown to Matrix clients with the redaction or ban: within a ban reason's length.
    let reason = decision
        .note
        .clone()
        .or_else(|| report.reason.clone())
        .map(|r| format!("reported: {r}").chars().take(moderation::MAX_REASON_CHARS).collect::<String>());
    match (decision.action, sender) {
        (Action::Dismiss, _) => Ok(()),
        (Action::Redact, _) => {
            let event =
                ruma::EventId::parse(&report.event_id).map_err(|e| RoomError::Invalid(e.to_string()))?;
            messages::redact(state, id, &event, actor.rank, reason.as_deref()).await
        }
        (Action::Ban, Some(user)) => {
            moderation::ban(state, id, actor, user, reason, decision.duration_secs).await.map(|_| ())
        }
        (Action::Mute, Some(user)) => {
            moderation::mute(state, id, actor, user, decision.duration_secs).await.map(|_| ())
        }
        (Action::Mute | Action::Ban, None) => {
            Err(RoomError::Invalid(format!("{} is not one of the app's users", report.sender)))
        }
    }
}

/// Deletes the homeserver's copy of a resolved report; a failure is retried by the intake.
async fn close_on_homeserver(state: &AppState, homeserver_report: i64) {
    match state.homeserver.delete_event_report(homeserver_report).await {
        Ok(()) => {
            if let Ok(mut conn) = state.store.pool().acquire().await {
                if let Err(e) = reports::closed_on_homeserver(&mut conn, homeserver_report).await {
                    tracing::warn!(error = %e, homeserver_report, "recording a closed homeserver report failed");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, homeserver_report, "closing the homeserver's report failed; retried")
        }
    }
}

/// Takes the reports Matrix clients made since the last read (newest first until one already
/// seen) into the queue, and closes on the homeserver what was resolved here but is still open
/// there. How many reports were new.
pub async fn take_homeserver_reports(state: &AppState) -> RoomResult<usize> {
    let mut conn = state.store.pool().acquire().await?;
    let seen = reports::cursor(&mut conn, FEED).await?;
    drop(conn);
    let hs = &state.homeserver;
    let mut fresh: Vec<EventReport> = Vec::new();
    let mut from = 0;
    loop {
        let page = hs.event_reports(from, 100).await?;
        // The whole page, not only up to the first one seen: the homeserver orders them by
        // arrival, not by id.
        let listed = page.reports.len();
        let new: Vec<EventReport> = page.reports.into_iter().filter(|report| report.id > seen).collect();
        let all_new = new.len() == listed;
        fresh.extend(new);
        match page.next {
            Some(next) if all_new => from = next,
            _ => break,
        }
    }
    fresh.sort_by_key(|report| report.id);
    let mut taken = 0;
    for report in &fresh {
        taken += usize::from(take(state, report).await?);
    }
    if let Some(newest) = fresh.iter().map(|report| report.id).max() {
        let mut conn = state.store.pool().acquire().await?;
        reports::advance_cursor(&mut conn, FEED, newest).await?;
    }
    let mut conn = state.store.pool().acquire().await?;
    let unclosed = reports::unclosed_on_homeserver(&mut conn, 100).await?;
    drop(conn);
    for homeserver_report in unclosed {
        close_on_homeserver(state, homeserver_report).await;
    }
    Ok(taken)
}

/// One homeserver report into the queue, if it is about one of our rooms; true when new.
async fn take(state: &AppState, report: &EventReport) -> RoomResult<bool> {
    let mut conn = state.store.reader().acquire().await?;
    let found = chatrooms::find_by_matrix_room(&mut conn, &report.room_id).await?;
    // Before the write below: on SQLite the writer is one connection.
    drop(conn);
    let Some(room) = found else { return Ok(false) };
    if room.deleted {
        return Ok(false);
    }
    let reporter_user_id =
        ruma::UserId::parse(&report.reporter).ok().and_then(|u| state.homeserver.ids().app_user(&u));
    let reason = report.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let new = NewReport {
        chatroom_id: room.id,
        event_id: &report.event_id,
        sender: report.sender.as_deref().unwrap_or_default(),
        reporter: &report.reporter,
        reporter_user_id,
        reason,
        source: ReportSource::Homeserver,
        homeserver_report_id: Some(report.id),
        at: report.received_ts,
    };
    let mut tx = state.store.begin().await?;
    let Some(report_id) = reports::insert(&mut tx, &new).await? else { return Ok(false) };
    emit_reported(&mut tx, &RoomRef::of(&room), report_id, &new).await?;
    tx.commit().await?;
    tracing::info!(
        chatroom = room.id,
        report = report_id,
        homeserver_report = report.id,
        "a client's report taken into the queue"
    );
    Ok(true)
}
