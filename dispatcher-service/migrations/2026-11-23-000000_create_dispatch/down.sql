DROP TABLE attempts;
DROP TABLE deliveries;
DROP TABLE events;
