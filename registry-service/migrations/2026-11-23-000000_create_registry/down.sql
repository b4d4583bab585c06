DROP TABLE registrations;
DROP TABLE notification_types;
DROP TABLE api_keys;
DROP TABLE partners;
