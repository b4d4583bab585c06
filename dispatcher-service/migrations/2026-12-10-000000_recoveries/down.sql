DROP TABLE recovery_items;
DROP TABLE recoveries;
