DROP TABLE health_events;
DELETE FROM notification_types t WHERE t.id = 900
    AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.notification_type_id = 900);
