-- The channels this session listens on. Sent as a simple query (one round trip, no prepared
-- statement), so it also runs through a transaction-mode pooler, on whichever server connection
-- the pooler picks: a channel missing here means the LISTEN did not stay with this connection.
SELECT pg_listening_channels()
