-- Organizations as the service keeps them: the name and avatar of their Matrix space, and the
-- space itself once made. A row appears when the backend names the organization or its first
-- room needs a space.
CREATE TABLE organizations (
    id BIGINT PRIMARY KEY,
    name TEXT,
    avatar_url TEXT,
    -- Localpart of the space's alias: createRoom with it is idempotent across crashes.
    space_alias TEXT NOT NULL UNIQUE,
    matrix_space_id TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX organizations_by_space ON organizations (matrix_space_id);

-- Rosters the backend pushes: who belongs to an organization, who takes part in an event.
CREATE TABLE organization_members (
    organization_id BIGINT NOT NULL,
    app_user_id BIGINT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    PRIMARY KEY (organization_id, app_user_id)
);
CREATE INDEX organization_members_by_user ON organization_members (app_user_id);

CREATE TABLE event_participants (
    organization_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    app_user_id BIGINT NOT NULL,
    PRIMARY KEY (organization_id, event_id, app_user_id)
);
CREATE INDEX event_participants_by_user ON event_participants (app_user_id);

-- The spaces' outbox, as sync_jobs is the rooms': one row per organization whose space has to
-- catch up.
CREATE TABLE space_jobs (
    organization_id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    failed BIGINT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT 'change',
    refusals BIGINT NOT NULL DEFAULT 0,
    error_kind TEXT,
    queued_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX space_jobs_due ON space_jobs (next_attempt_at);
