UPDATE notification_types
SET description = 'Your registrations'' health: a callback entered its error state, recovered, or was paused automatically'
WHERE id = 900;
