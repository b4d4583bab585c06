DROP TABLE endpoint_limits;
DROP TABLE dispatcher_replicas;
