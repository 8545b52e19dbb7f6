-- Statements that GUI and BI tools send when they connect and when a user browses a
-- schema, written after what these tools do against MySQL and MariaDB servers.
-- tests/compat/test_gui_queries.py runs every one through envproxy in read-only prod
-- (as alice, database shop@prod) and expects none to be refused or to fail.
--
-- Format: a line "-- tool: NAME (when)" starts a group; every other non-blank line that
-- does not start with "--" is one statement, sent as written. Each statement was
-- checked to run on MariaDB 10.11 itself.

-- tool: mysql / mariadb command line (on connect)
select @@version_comment limit 1
SELECT DATABASE()
SHOW WARNINGS

-- tool: JDBC drivers under DBeaver and DataGrip (on connect)
/* mysql-connector-j-8.0.33 */SELECT @@session.auto_increment_increment AS auto_increment_increment, @@character_set_client AS character_set_client, @@character_set_connection AS character_set_connection, @@character_set_results AS character_set_results, @@character_set_server AS character_set_server, @@collation_server AS collation_server, @@collation_connection AS collation_connection, @@init_connect AS init_connect, @@interactive_timeout AS interactive_timeout, @@license AS license, @@lower_case_table_names AS lower_case_table_names, @@max_allowed_packet AS max_allowed_packet, @@net_write_timeout AS net_write_timeout, @@performance_schema AS performance_schema, @@sql_mode AS sql_mode, @@system_time_zone AS system_time_zone, @@time_zone AS time_zone, @@tx_isolation AS transaction_isolation, @@wait_timeout AS wait_timeout
SELECT @@max_allowed_packet, @@system_time_zone, @@time_zone, @@auto_increment_increment
SET character_set_results = NULL
SET NAMES utf8mb4
SET autocommit=1
SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ
SELECT @@session.tx_read_only
SET net_write_timeout=600
SET net_write_timeout=60

-- tool: DBeaver (on connect and in the navigator)
/* ApplicationName=DBeaver 24.1.0 - Main */ SELECT DATABASE()
/* ApplicationName=DBeaver 24.1.0 - Metadata */ SHOW DATABASES
SHOW ENGINES
SHOW CHARSET
SHOW COLLATION
SHOW VARIABLES LIKE 'lower_case_table_names'
SHOW FULL TABLES FROM `shop`
SHOW TABLE STATUS FROM `shop`
SHOW TABLE STATUS FROM `shop` LIKE 'orders'
SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' ORDER BY ORDINAL_POSITION
SHOW FULL COLUMNS FROM `shop`.`orders`
SHOW INDEX FROM `shop`.`orders`
SELECT kc.CONSTRAINT_NAME, kc.TABLE_NAME, kc.COLUMN_NAME, kc.REFERENCED_TABLE_SCHEMA, kc.REFERENCED_TABLE_NAME, kc.REFERENCED_COLUMN_NAME, rc.UPDATE_RULE, rc.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE kc JOIN information_schema.REFERENTIAL_CONSTRAINTS rc ON rc.CONSTRAINT_SCHEMA = kc.CONSTRAINT_SCHEMA AND rc.CONSTRAINT_NAME = kc.CONSTRAINT_NAME WHERE kc.TABLE_SCHEMA = 'shop' AND kc.TABLE_NAME = 'orders' ORDER BY kc.ORDINAL_POSITION
SELECT * FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='shop' ORDER BY ROUTINE_NAME
SELECT * FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='shop'
SELECT * FROM information_schema.EVENTS WHERE EVENT_SCHEMA='shop'
SHOW CREATE TABLE `shop`.`orders`
SHOW FULL PROCESSLIST
SHOW PLUGINS
SELECT * FROM `shop`.`orders` LIMIT 0, 200
SELECT COUNT(*) FROM `shop`.`orders`

-- tool: MySQL Workbench (on connect and in the schema tree)
SET SQL_SAFE_UPDATES=1
SET CHARACTER SET utf8mb4
SELECT CONNECTION_ID()
SELECT current_user()
SHOW SESSION VARIABLES LIKE 'lower_case_table_names'
SHOW SESSION VARIABLES LIKE 'version_compile_os'
SHOW SESSION STATUS LIKE 'Ssl_cipher'
SELECT @@version, @@version_comment
SHOW SESSION VARIABLES
SHOW GLOBAL STATUS
SHOW DATABASES
SHOW FULL TABLES FROM `shop`
SHOW COLUMNS FROM `shop`.`orders`
SHOW INDEX FROM `shop`.`orders`
SHOW PROCEDURE STATUS WHERE Db='shop'
SHOW FUNCTION STATUS WHERE Db='shop'
SHOW TRIGGERS FROM `shop`
SHOW EVENTS FROM `shop`
SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_TYPE = 'VIEW'
SHOW CREATE TABLE `shop`.`customers`
SELECT * FROM `shop`.`customers` LIMIT 0, 1000
EXPLAIN SELECT * FROM `shop`.`orders` WHERE customer_id = 1

-- tool: HeidiSQL (on connect and in the tree)
SHOW /*!50002 GLOBAL */ STATUS
SHOW VARIABLES
SELECT NOW()
SELECT @@SESSION.sql_mode
/*!40101 SET SQL_MODE='NO_ENGINE_SUBSTITUTION' */
/*!40101 SET SQL_MODE='STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION' */
SELECT `SCHEMA_NAME` FROM `information_schema`.`SCHEMATA` ORDER BY `SCHEMA_NAME`
SHOW TABLE STATUS FROM `shop`
SHOW FUNCTION STATUS WHERE `Db`='shop'
SHOW PROCEDURE STATUS WHERE `Db`='shop'
SHOW TRIGGERS FROM `shop`
SELECT *, EVENT_SCHEMA AS `Db`, EVENT_NAME AS `Name` FROM information_schema.`EVENTS` WHERE `EVENT_SCHEMA`='shop'
SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='products' ORDER BY ORDINAL_POSITION
SELECT * FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA='shop' AND TABLE_NAME='products'
SHOW CREATE TABLE `shop`.`products`
SELECT * FROM `shop`.`products` LIMIT 1000

-- tool: DataGrip (introspection)
select database(), schema(), left(user(),instr(concat(user(),'@'),'@')-1), @@version_comment
select schema_name, default_character_set_name, default_collation_name from information_schema.schemata
select table_schema, table_name, table_type, engine, table_collation, table_comment, create_time, update_time, auto_increment from information_schema.tables where table_schema = 'shop'
select table_name, column_name, ordinal_position, column_default, is_nullable, data_type, column_type, character_set_name, collation_name, column_key, extra, column_comment, generation_expression from information_schema.columns where table_schema = 'shop' order by table_name, ordinal_position
select table_name, index_name, non_unique, seq_in_index, column_name, collation, sub_part, index_type, index_comment from information_schema.statistics where table_schema = 'shop' order by table_name, index_name, seq_in_index
select constraint_name, table_name, column_name, referenced_table_schema, referenced_table_name, referenced_column_name, ordinal_position from information_schema.key_column_usage where table_schema = 'shop' and referenced_column_name is not null
select constraint_name, unique_constraint_schema, unique_constraint_name, update_rule, delete_rule, table_name, referenced_table_name from information_schema.referential_constraints where constraint_schema = 'shop'
select routine_schema, routine_name, routine_type, data_type, dtd_identifier, is_deterministic, sql_data_access, security_type, routine_comment from information_schema.routines where routine_schema = 'shop'
select specific_name, ordinal_position, parameter_mode, parameter_name, data_type, dtd_identifier from information_schema.parameters where specific_schema = 'shop'
select table_name, view_definition, check_option, is_updatable, security_type from information_schema.views where table_schema = 'shop'
select grantee, table_schema, privilege_type, is_grantable from information_schema.schema_privileges
select @@lower_case_table_names, @@default_storage_engine, @@character_set_server, @@collation_server

-- tool: Metabase (connection test and sync)
SELECT 1
SELECT true AS _
SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED
SET @@session.time_zone = '+00:00'
SELECT @@GLOBAL.time_zone AS global_tz, @@system_time_zone AS system_tz, time_format(timediff(now(), convert_tz(now(), @@GLOBAL.time_zone, '+00:00')), '%H:%i') AS 'offset'
SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'
SELECT COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'orders'
SELECT `shop`.`orders`.`status` AS `status` FROM `shop`.`orders` LIMIT 10000
SELECT count(*) AS `count` FROM `shop`.`orders`
SELECT `source`.`status` AS `status`, count(*) AS `count` FROM (SELECT `shop`.`orders`.`status` AS `status` FROM `shop`.`orders`) `source` GROUP BY `source`.`status` ORDER BY `source`.`status` ASC

-- tool: Tableau (connect and data source preview)
SET NAMES utf8mb4 COLLATE utf8mb4_general_ci
SHOW VARIABLES LIKE 'character_set%'
SELECT @@sql_mode
SHOW TABLES FROM `shop`
SHOW COLUMNS FROM `orders` FROM `shop`
SELECT TABLE_NAME, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'shop'
SELECT * FROM `shop`.`orders` LIMIT 0
SELECT `orders`.`status` AS `status`, SUM(`orders`.`total`) AS `sum:total:ok` FROM `shop`.`orders` `orders` GROUP BY 1
SELECT `customers`.`name` AS `name`, COUNT(`orders`.`id`) AS `cnt:id:ok` FROM `shop`.`orders` `orders` INNER JOIN `shop`.`customers` `customers` ON (`orders`.`customer_id` = `customers`.`id`) GROUP BY 1 ORDER BY 2 DESC LIMIT 10
