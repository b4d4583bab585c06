DROP TABLE health_relay;
