-- Tables shared with the Docora service, so a real Docora database is a valid input.
CREATE TABLE IF NOT EXISTS apps (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id varchar(50) NOT NULL UNIQUE,
    token_hash text NOT NULL,
    app_name varchar(255) NOT NULL,
    base_url text NOT NULL,
    email varchar(255),
    website text,
    description text,
    client_auth_key_encrypted text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS repositories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repository_id varchar(50) NOT NULL UNIQUE,
    github_url text NOT NULL UNIQUE,
    owner varchar(255) NOT NULL,
    name varchar(255) NOT NULL,
    is_private boolean NOT NULL DEFAULT false,
    consecutive_failures integer NOT NULL DEFAULT 0,
    circuit_open_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app_repositories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id varchar(50) NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    repository_id varchar(50) NOT NULL REFERENCES repositories (repository_id) ON DELETE CASCADE,
    github_token_encrypted text,
    status varchar(32) NOT NULL DEFAULT 'pending_snapshot',
    retry_count integer NOT NULL DEFAULT 0,
    last_error text,
    last_scanned_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, repository_id)
);
CREATE INDEX IF NOT EXISTS app_repositories_status_idx ON app_repositories (status);

CREATE TABLE IF NOT EXISTS repository_snapshots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repository_id varchar(50) NOT NULL UNIQUE REFERENCES repositories (repository_id) ON DELETE CASCADE,
    commit_sha varchar(64),
    branch varchar(255),
    scanned_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS snapshot_files (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    snapshot_id uuid NOT NULL REFERENCES repository_snapshots (id) ON DELETE CASCADE,
    file_path text NOT NULL,
    file_sha varchar(64) NOT NULL,
    file_size bigint NOT NULL,
    UNIQUE (snapshot_id, file_path)
);

CREATE TABLE IF NOT EXISTS app_delivered_files (
    app_id varchar(50) NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    repository_id varchar(50) NOT NULL REFERENCES repositories (repository_id) ON DELETE CASCADE,
    file_path text NOT NULL,
    file_sha varchar(64) NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, repository_id, file_path)
);
