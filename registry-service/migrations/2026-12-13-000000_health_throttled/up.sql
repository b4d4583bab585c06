-- The dispatchers now also tell a partner when an endpoint has been
-- throttled for long (`throttled`); the type's description says so.
UPDATE notification_types
SET description = 'Your registrations'' health: a callback entered its error state, recovered, was paused automatically, or has been throttled for long'
WHERE id = 900;
