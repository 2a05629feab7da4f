-- A UUIDv7 made in SQL, for events the database writes itself (expiry).
CREATE FUNCTION consentd_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The current selections; always what the history says.
CREATE TABLE preference_selections (
    tenant_id              uuid        NOT NULL REFERENCES tenants,
    widget_id              text        NOT NULL,
    user_id                text        NOT NULL,
    topic_id               text        NOT NULL,
    option_id              text        NOT NULL,
    topic_title_en         text        NOT NULL,
    topic_title_translated text        NOT NULL,
    option_title_en        text        NOT NULL,
    option_title_translated text       NOT NULL,
    language_code          text,
    add_time               timestamptz NOT NULL,
    expire_time            timestamptz,
    PRIMARY KEY (tenant_id, widget_id, user_id, topic_id, option_id)
);
-- The expiry worker's queue, across tenants.
CREATE INDEX preference_selections_due
    ON preference_selections (expire_time) WHERE expire_time IS NOT NULL;
CREATE INDEX preference_selections_user ON preference_selections (tenant_id, user_id);

CREATE TABLE preference_events (
    tenant_id              uuid        NOT NULL REFERENCES tenants,
    event_id               uuid        NOT NULL,
    widget_id              text        NOT NULL,
    user_id                text        NOT NULL,
    topic_id               text        NOT NULL,
    change_type            smallint    NOT NULL,
    author_type            smallint    NOT NULL,
    author_key_id          uuid,
    language_code          text,
    topic_title_en         text        NOT NULL,
    topic_title_translated text        NOT NULL,
    -- The options affected, as three parallel arrays.
    option_ids             text[]      NOT NULL,
    option_titles_en       text[]      NOT NULL,
    option_titles_translated text[]    NOT NULL,
    event_time             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX preference_events_user
    ON preference_events (tenant_id, widget_id, user_id, event_time, event_id);
CREATE INDEX preference_events_widget
    ON preference_events (tenant_id, widget_id, event_time, event_id);
CREATE INDEX preference_events_user_all_widgets ON preference_events (tenant_id, user_id);

-- AIP-155: the first response to a request id, returned to its retries.
-- `response` stays NULL only inside the transaction that claims the id.
CREATE TABLE preference_requests (
    tenant_id  uuid        NOT NULL REFERENCES tenants,
    request_id text        NOT NULL,
    response   bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
