DROP TABLE registry_changes;
DROP TABLE registry_version;
