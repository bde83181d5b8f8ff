-- Oban schema version 11: the oban_peers leadership table. It is UNLOGGED: a lease that
-- expires within seconds is not worth WAL, and after a crash it is simply empty.

CREATE TABLE IF NOT EXISTS {prefix}.oban_peers (
  name text NOT NULL,
  node text NOT NULL,
  started_at timestamp NOT NULL,
  expires_at timestamp NOT NULL,
  PRIMARY KEY (name)
);

ALTER TABLE {prefix}.oban_peers SET UNLOGGED;
