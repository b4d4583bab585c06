-- Each notification type may carry a JSON Schema that its published
-- payloads and test (echo) bodies must satisfy. Stored as the text the
-- registry compiled before storing it; NULL accepts any JSON document.
ALTER TABLE notification_types ADD COLUMN payload_schema text;

-- The seeds' rule for the echo-able types 5, 6 and 7: a JSON object with
-- exactly one of processUniqueId and simulationUniqueId given (present and
-- not null); both or neither is refused.
UPDATE notification_types SET payload_schema = '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "description": "Exactly one of processUniqueId and simulationUniqueId is given (present and not null)",
  "oneOf": [
    {
      "required": ["processUniqueId"],
      "properties": {"processUniqueId": {"not": {"type": "null"}}, "simulationUniqueId": {"type": "null"}}
    },
    {
      "required": ["simulationUniqueId"],
      "properties": {"simulationUniqueId": {"not": {"type": "null"}}, "processUniqueId": {"type": "null"}}
    }
  ]
}'
WHERE id IN (5, 6, 7);

-- Running caches learn that the catalogue changed.
WITH next AS (UPDATE registry_version SET version = version + 1 RETURNING version)
INSERT INTO registry_changes (version, kind) SELECT version, 'catalogue' FROM next;
