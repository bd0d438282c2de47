-- Blocklists: an organization's, and each room's additions to it. Lists are JSON arrays.
CREATE TABLE blocklists (
    scope TEXT NOT NULL CHECK (scope IN ('organization', 'room')),
    scope_id BIGINT NOT NULL,
    words TEXT NOT NULL,
    patterns TEXT NOT NULL,
    allowed_link_domains TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, scope_id)
);
