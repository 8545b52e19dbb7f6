// envproxy compatibility checks for MariaDB Connector/J (JDBC).
//
//   java -cp mariadb-java-client.jar:CLASSDIR Compat PROXY_URL DIRECT_PROD_URL [CHECK...]
//
// PROXY_URL is the proxy without a database, e.g. jdbc:mariadb://127.0.0.1:3307;
// DIRECT_PROD_URL reaches the prod backend itself (used as the reference for values
// read through the binary protocol). With CHECK names, only those run.
//
// Prints one JSON object per check on its own line: {"check": NAME, "ok": BOOL,
// "detail": TEXT, "ms": N}. Each check runs with its own time limit, so a check that
// hangs is reported as failed and the others still run. The accounts are those of
// tests/integration/harness.py: alice (dev write, prod read), bob (prod read).

import java.io.ByteArrayInputStream;
import java.io.StringReader;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLTimeoutException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

public final class Compat {
    /** A check returns a short description of what it saw; it throws when it fails. */
    interface Check {
        String run() throws Exception;
    }

    static final class Failed extends Exception {
        Failed(String message) {
            super(message);
        }
    }

    static final long CHECK_TIMEOUT_MS = 15_000;
    // Every connection: bounded connect and read, so that a stuck proxy fails a check
    // instead of hanging the run.
    static final String COMMON = "connectTimeout=5000&socketTimeout=10000";

    static String proxyUrl;
    static String directProdUrl;

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Compat PROXY_URL DIRECT_PROD_URL [CHECK...]");
            System.exit(2);
        }
        proxyUrl = args[0].replaceAll("/+$", "");
        directProdUrl = args[1];
        List<String> only = Arrays.asList(args).subList(2, args.length);

        Map<String, Check> checks = new LinkedHashMap<>();
        checks.put("connect_database_at_env_in_url", Compat::connectDatabaseAtEnv);
        checks.put("connect_env_only_in_url", Compat::connectEnvOnly);
        checks.put("connect_over_tls", Compat::connectOverTls);
        checks.put("server_prepared_statement_is_used", Compat::serverPrepareIsUsed);
        checks.put("server_prepared_parameter_types", Compat::serverPrepareParameterTypes);
        checks.put("server_prepared_reads_every_column_type", Compat::serverPrepareEveryColumnType);
        checks.put("server_prepared_long_data_streams", Compat::serverPrepareLongData);
        checks.put("server_prepared_reexecute_and_cache", Compat::serverPrepareReexecute);
        checks.put("execute_batch", Compat::executeBatch);
        checks.put("connection_id_is_the_handshake_thread_id", Compat::connectionId);
        checks.put("statement_cancel_kills_running_query", Compat::statementCancel);
        checks.put("query_timeout_interrupts_sleep_in_dev", Compat::queryTimeoutDev);
        checks.put("query_timeout_prefix_allowed_in_prod", Compat::queryTimeoutProd);
        checks.put("metadata_catalogs_and_tables", Compat::metadataCatalogsAndTables);
        checks.put("metadata_columns_and_keys", Compat::metadataColumnsAndKeys);
        checks.put("write_refused_in_prod_with_1290", Compat::writeRefusedText);
        checks.put("prepared_write_refused_in_prod_with_1290", Compat::writeRefusedPrepared);
        checks.put("reset_connection_clears_session_state", Compat::resetConnection);
        checks.put("pool_datasource_resets_between_borrowers", Compat::poolDataSource);

        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        for (Map.Entry<String, Check> e : checks.entrySet()) {
            if (!only.isEmpty() && !only.contains(e.getKey())) {
                continue;
            }
            long start = System.nanoTime();
            boolean ok;
            String detail;
            Future<String> f = pool.submit(e.getValue()::run);
            try {
                detail = f.get(CHECK_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                ok = true;
            } catch (TimeoutException te) {
                f.cancel(true);
                ok = false;
                detail = "timed out after " + CHECK_TIMEOUT_MS + " ms";
            } catch (java.util.concurrent.ExecutionException ee) {
                ok = false;
                detail = describe(ee.getCause());
            }
            long ms = (System.nanoTime() - start) / 1_000_000;
            System.out.println("{\"check\": " + json(e.getKey()) + ", \"ok\": " + ok
                    + ", \"detail\": " + json(detail) + ", \"ms\": " + ms + "}");
            System.out.flush();
        }
        pool.shutdownNow();
        System.exit(0);
    }

    // ---------------------------------------------------------------- helpers

    static Connection connect(String database, String user, String password, String options)
            throws SQLException {
        String url = proxyUrl + "/" + database + "?user=" + user + "&password=" + password + "&"
                + COMMON + (options.isEmpty() ? "" : "&" + options);
        return DriverManager.getConnection(url);
    }

    static Connection alice(String database, String options) throws SQLException {
        return connect(database, "alice", "alice-pw", options);
    }

    static void expect(boolean condition, String message) throws Failed {
        if (!condition) {
            throw new Failed(message);
        }
    }

    static void expectEq(Object want, Object got, String what) throws Failed {
        if (want == null ? got != null : !want.equals(got)) {
            throw new Failed(what + ": expected " + want + ", got " + got);
        }
    }

    static List<List<String>> rows(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return strings(rs);
        }
    }

    static List<List<String>> strings(ResultSet rs) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) {
                row.add(rs.getString(i));
            }
            out.add(row);
        }
        return out;
    }

    static String one(Connection c, String sql) throws SQLException {
        List<List<String>> r = rows(c, sql);
        return r.isEmpty() ? null : r.get(0).get(0);
    }

    /** Fails unless the driver really prepared on the server (Connector/J falls back to
     *  client-side preparation, silently, when COM_STMT_PREPARE gets an error). */
    static void expectServerPrepared(PreparedStatement ps) throws Failed {
        String kind = ps.getClass().getSimpleName();
        expect(kind.contains("ServerSide"), "COM_STMT_PREPARE did not succeed: the driver fell"
                + " back to a client-side prepared statement (" + kind + ")");
    }

    static String describe(Throwable t) {
        if (t instanceof SQLException) {
            SQLException e = (SQLException) t;
            return t.getClass().getSimpleName() + " errorCode=" + e.getErrorCode() + " sqlState="
                    + e.getSQLState() + ": " + e.getMessage();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder("0x");
        for (byte x : b) {
            sb.append(String.format("%02x", x));
        }
        return sb.toString();
    }

    static long threadId(Connection c) throws SQLException {
        return c.unwrap(org.mariadb.jdbc.MariaDbConnection.class).getServerThreadId();
    }

    static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (ch < 0x20) {
                        sb.append(String.format("\\u%04x", (int) ch));
                    } else {
                        sb.append(ch);
                    }
            }
        }
        return sb.append('"').toString();
    }

    static int errorCodeOf(ThrowingRunnable r) throws Exception {
        try {
            r.run();
        } catch (SQLException e) {
            return e.getErrorCode();
        }
        return 0;
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    // ---------------------------------------------------------------- connecting

    // jdbc:mariadb://HOST:PORT/shop@prod: the '@' is written as it is; Connector/J sends
    // the path unchanged as the handshake database ('%40' is not decoded by the driver).
    static String connectDatabaseAtEnv() throws Exception {
        try (Connection c = alice("shop@prod", "")) {
            List<List<String>> r = rows(c, "SELECT DATABASE(), status FROM orders WHERE id = 3");
            expectEq(Arrays.asList("shop", "shipped"), r.get(0), "DATABASE() and prod's order 3");
            expectEq("shop", c.getCatalog(), "getCatalog()");
            String version = c.getMetaData().getDatabaseProductVersion();
            expect(version.endsWith("-envproxy"), "server version should end with -envproxy: "
                    + version);
            return "database shop in prod; version " + version;
        }
    }

    static String connectEnvOnly() throws Exception {
        try (Connection c = alice("@prod", "")) {
            List<List<String>> r = rows(c, "SELECT DATABASE(), status FROM orders WHERE id = 3");
            expectEq(Arrays.asList("shop", "shipped"), r.get(0), "prod's default database");
            return "prod's default database shop";
        }
    }

    static String connectOverTls() throws Exception {
        try (Connection c = alice("shop@dev", "useSsl=true&trustServerCertificate=true")) {
            expectEq("pending", one(c, "SELECT status FROM orders WHERE id = 3"), "dev's order 3");
            return "TLS login and query in dev";
        }
    }

    // ---------------------------------------------------------------- binary protocol

    static String serverPrepareIsUsed() throws Exception {
        try (Connection c = alice("shop@dev", "useServerPrepStmts=true");
                PreparedStatement ps = c.prepareStatement("SELECT ? + 1")) {
            expectServerPrepared(ps);
            ps.setInt(1, 41);
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "no row");
                expectEq(42L, rs.getLong(1), "? + 1");
            }
            return ps.getClass().getSimpleName();
        }
    }

    static String serverPrepareParameterTypes() throws Exception {
        String unicode = "Zoë 東京 🚀 O'Brien \\ \"q\"";
        BigDecimal decimal = new BigDecimal("-12345678901234.567890");
        Date date = Date.valueOf("2024-02-29");
        Timestamp ts = Timestamp.valueOf("2024-02-29 13:45:59.123456");
        byte[] blob = new byte[] {0, (byte) 0xff, 1, 2, 0x27, 0x5c, 0};
        try (Connection c = alice("shop@dev", "useServerPrepStmts=true");
                PreparedStatement ps = c.prepareStatement(
                        "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?")) {
            expectServerPrepared(ps);
            ps.setInt(1, -2147483648);
            ps.setLong(2, 9223372036854775807L);
            ps.setString(3, unicode);
            ps.setNull(4, Types.VARCHAR);
            ps.setBigDecimal(5, decimal);
            ps.setDate(6, date);
            ps.setTimestamp(7, ts);
            ps.setBytes(8, blob);
            ps.setDouble(9, 2.718281828459045);
            ps.setBoolean(10, true);
            ps.setString(11, "");
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "no row");
                expectEq(-2147483648, rs.getInt(1), "int");
                expectEq(9223372036854775807L, rs.getLong(2), "long");
                expectEq(unicode, rs.getString(3), "unicode string");
                expectEq(null, rs.getString(4), "null");
                expect(rs.wasNull(), "wasNull() after a NULL");
                expect(decimal.compareTo(rs.getBigDecimal(5)) == 0, "decimal: " + rs.getBigDecimal(5));
                expectEq(date, rs.getDate(6), "date");
                expectEq(ts, rs.getTimestamp(7), "timestamp with microseconds");
                expectEq(hex(blob), hex(rs.getBytes(8)), "bytes");
                expectEq(2.718281828459045, rs.getDouble(9), "double");
                expectEq(true, rs.getBoolean(10), "boolean");
                expectEq("", rs.getString(11), "empty string");
            }
            return "11 parameters of 10 types round-trip";
        }
    }

    /** One column value as Connector/J shows it: getString and getObject, or the error. */
    static String cell(ResultSet rs, int i) {
        StringBuilder sb = new StringBuilder();
        try {
            sb.append("str=").append(rs.getString(i));
        } catch (Exception e) {
            sb.append("str!").append(e.getClass().getSimpleName());
        }
        try {
            Object o = rs.getObject(i);
            sb.append(" obj=");
            if (o instanceof byte[]) {
                sb.append(hex((byte[]) o));
            } else if (o != null) {
                sb.append(o.getClass().getSimpleName()).append(':').append(o);
            } else {
                sb.append("null");
            }
        } catch (Exception e) {
            sb.append(" obj!").append(e.getClass().getSimpleName());
        }
        return sb.toString();
    }

    static List<String> preparedTypesRows(Connection c) throws Exception {
        List<String> out = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT * FROM shop.types WHERE id >= ? ORDER BY id")) {
            expectServerPrepared(ps);
            ps.setInt(1, 0);
            try (ResultSet rs = ps.executeQuery()) {
                ResultSetMetaData md = rs.getMetaData();
                while (rs.next()) {
                    for (int i = 1; i <= md.getColumnCount(); i++) {
                        out.add("row " + rs.getInt(1) + " " + md.getColumnName(i) + " ["
                                + md.getColumnTypeName(i) + "] " + cell(rs, i));
                    }
                }
            }
        }
        return out;
    }

    static String serverPrepareEveryColumnType() throws Exception {
        List<String> want;
        try (Connection d = DriverManager.getConnection(directProdUrl + "&" + COMMON
                + "&useServerPrepStmts=true")) {
            want = preparedTypesRows(d);
        }
        List<String> got;
        try (Connection c = alice("shop@prod", "useServerPrepStmts=true")) {
            got = preparedTypesRows(c);
        }
        expect(!want.isEmpty(), "the reference read returned nothing");
        for (int i = 0; i < Math.max(want.size(), got.size()); i++) {
            String w = i < want.size() ? want.get(i) : "(nothing)";
            String g = i < got.size() ? got.get(i) : "(nothing)";
            expectEq(w, g, "value read through the proxy vs. the backend");
        }
        return want.size() + " values (3 rows of shop.types) equal to the backend's";
    }

    static String serverPrepareLongData() throws Exception {
        byte[] big = new byte[1 << 20];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i * 31 + 7);
        }
        String text = "Zoë 東京 ".repeat(20000);
        try (Connection c = alice("shop@dev", "useServerPrepStmts=true");
                PreparedStatement ps = c.prepareStatement("SELECT LENGTH(?), MD5(?), CHAR_LENGTH(?)")) {
            expectServerPrepared(ps);
            ps.setBinaryStream(1, new ByteArrayInputStream(big), big.length);
            ps.setBinaryStream(2, new ByteArrayInputStream(big), big.length);
            ps.setCharacterStream(3, new StringReader(text), text.length());
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "no row");
                expectEq((long) big.length, rs.getLong(1), "LENGTH of the streamed blob");
                java.security.MessageDigest md5 = java.security.MessageDigest.getInstance("MD5");
                expectEq(hex(md5.digest(big)).substring(2), rs.getString(2), "MD5 of the streamed blob");
                expectEq((long) text.codePointCount(0, text.length()), rs.getLong(3),
                        "CHAR_LENGTH of the streamed text");
            }
            return "1 MiB binary stream and " + text.getBytes(StandardCharsets.UTF_8).length
                    + " bytes of text sent as long data";
        }
    }

    static String serverPrepareReexecute() throws Exception {
        try (Connection c = alice("shop@dev", "useServerPrepStmts=true&cachePrepStmts=true")) {
            try (PreparedStatement ps = c.prepareStatement("SELECT ? * 2, CONCAT('n', ?)")) {
                expectServerPrepared(ps);
                for (int i = 0; i < 200; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, Integer.toString(i));
                    try (ResultSet rs = ps.executeQuery()) {
                        expect(rs.next(), "no row at execution " + i);
                        expectEq((long) i * 2, rs.getLong(1), "execution " + i);
                        expectEq("n" + i, rs.getString(2), "execution " + i);
                    }
                }
            }
            // The same text prepared again and again: the driver's statement cache.
            for (int i = 0; i < 50; i++) {
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT name FROM customers WHERE id = ?")) {
                    expectServerPrepared(ps);
                    ps.setInt(1, 1 + i % 8);
                    try (ResultSet rs = ps.executeQuery()) {
                        expect(rs.next(), "customer " + (1 + i % 8) + " not found");
                    }
                }
            }
            expectEq("1", one(c, "SELECT 1"), "text query after the prepared ones");
            return "200 executions of one statement, 50 prepares of one text";
        }
    }

    static String executeBatch() throws Exception {
        try (Connection c = alice("shop@dev", "useServerPrepStmts=true")) {
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TEMPORARY TABLE compat_batch (id INT PRIMARY KEY, "
                        + "name VARCHAR(50), amount DECIMAL(10,2))");
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO compat_batch (id, name, amount) VALUES (?, ?, ?)")) {
                expectServerPrepared(ps);
                for (int i = 1; i <= 50; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "row " + i + " ë");
                    ps.setBigDecimal(3, new BigDecimal(i + ".25"));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                expectEq(50, counts.length, "update counts");
                for (int n : counts) {
                    expect(n == 1 || n == Statement.SUCCESS_NO_INFO, "update count " + n);
                }
            }
            try (Statement st = c.createStatement()) {
                st.addBatch("UPDATE compat_batch SET amount = amount + 1 WHERE id <= 10");
                st.addBatch("DELETE FROM compat_batch WHERE id > 40");
                st.addBatch("INSERT INTO compat_batch VALUES (100, 'text batch', 0)");
                int[] counts = st.executeBatch();
                expectEq("[10, 10, 1]", Arrays.toString(counts), "text batch update counts");
            }
            List<List<String>> r = rows(c, "SELECT COUNT(*), SUM(amount), MAX(name) FROM compat_batch");
            expectEq(Arrays.asList("41", "840.00", "text batch"), r.get(0), "table after the batches");
            return "50-row prepared batch and a 3-statement text batch";
        }
    }

    // ---------------------------------------------------------------- cancel and timeouts

    // Drivers and pools take the thread id from the handshake (KILL, cancel, logs);
    // SELECT CONNECTION_ID() must give the same number wherever the session's statements
    // run: after a switch to another environment and after a reset.
    static String connectionId() throws Exception {
        try (Connection c = alice("shop@dev", "useResetConnection=true")) {
            String handshake = Long.toString(threadId(c));
            expectEq(handshake, one(c, "SELECT CONNECTION_ID()"), "CONNECTION_ID() in dev");
            try (Statement st = c.createStatement()) {
                st.execute("USE shop@prod");
            }
            expectEq(handshake, one(c, "SELECT CONNECTION_ID()"), "CONNECTION_ID() after USE shop@prod");
            expectEq(handshake, one(c, "/* env=dev */ SELECT CONNECTION_ID()"),
                    "CONNECTION_ID() with an env=dev hint");
            ((org.mariadb.jdbc.MariaDbConnection) c).reset();
            expectEq(handshake, one(c, "SELECT CONNECTION_ID()"), "CONNECTION_ID() after reset()");
            return "CONNECTION_ID() = handshake thread id " + handshake;
        }
    }

    // Statement.cancel() opens a second connection with the same URL and sends
    // KILL QUERY <thread id from the first connection's handshake>.
    static String statementCancel() throws Exception {
        try (Connection c = alice("shop@dev", "")) {
            Statement st = c.createStatement();
            AtomicReference<Throwable> cancelError = new AtomicReference<>();
            Thread canceller = new Thread(() -> {
                try {
                    Thread.sleep(700);
                    st.cancel();
                } catch (Throwable t) {
                    cancelError.set(t);
                }
            });
            long start = System.nanoTime();
            canceller.start();
            String outcome;
            try (ResultSet rs = st.executeQuery("SELECT SLEEP(5)")) {
                rs.next();
                outcome = "SLEEP returned " + rs.getString(1);
            } catch (SQLException e) {
                outcome = describe(e);
            }
            long ms = (System.nanoTime() - start) / 1_000_000;
            canceller.join(5000);
            if (cancelError.get() != null) {
                throw new Failed("Statement.cancel() failed: " + describe(cancelError.get()));
            }
            expect(ms < 3500, "the statement was not interrupted (" + ms + " ms; " + outcome + ")");
            expectEq("1", one(c, "SELECT 1"), "query after the cancelled one");
            return "interrupted after " + ms + " ms: " + outcome;
        }
    }

    static String queryTimeoutDev() throws Exception {
        try (Connection c = alice("shop@dev", ""); Statement st = c.createStatement()) {
            st.setQueryTimeout(1);
            long start = System.nanoTime();
            try {
                st.executeQuery("SELECT SLEEP(4)").close();
                throw new Failed("SELECT SLEEP(4) with a 1 s query timeout was not interrupted");
            } catch (SQLTimeoutException e) {
                long ms = (System.nanoTime() - start) / 1_000_000;
                expect(ms < 3000, "interrupted only after " + ms + " ms");
                st.setQueryTimeout(0);
                expectEq("1", one(c, "SELECT 1"), "query after the timeout");
                return "SQLTimeoutException after " + ms + " ms: " + describe(e);
            }
        }
    }

    // Connector/J implements setQueryTimeout on MariaDB with a
    // SET STATEMENT max_statement_time=N FOR ... prefix: read-only prod must let it through.
    static String queryTimeoutProd() throws Exception {
        try (Connection c = alice("shop@prod", ""); Statement st = c.createStatement()) {
            st.setQueryTimeout(5);
            try (ResultSet rs = st.executeQuery("SELECT COUNT(*) FROM orders")) {
                expect(rs.next(), "no row");
                expectEq(11L, rs.getLong(1), "prod's order count");
            }
            return "a SELECT with a query timeout runs in read-only prod";
        }
    }

    // ---------------------------------------------------------------- DatabaseMetaData

    static TreeSet<String> column(ResultSet rs, String name) throws SQLException {
        TreeSet<String> out = new TreeSet<>();
        try (rs) {
            while (rs.next()) {
                out.add(rs.getString(name));
            }
        }
        return out;
    }

    static String metadataCatalogsAndTables() throws Exception {
        try (Connection c = alice("shop@prod", "")) {
            DatabaseMetaData md = c.getMetaData();
            TreeSet<String> catalogs = column(md.getCatalogs(), "TABLE_CAT");
            expect(catalogs.contains("shop") && catalogs.contains("billing"),
                    "getCatalogs() should list prod's shop and billing: " + catalogs);
            expect(!catalogs.contains("analytics"), "getCatalogs() lists dev's analytics: " + catalogs);
            md.getSchemas().close();
            TreeSet<String> tables = column(md.getTables(c.getCatalog(), null, "%",
                    new String[] {"TABLE"}), "TABLE_NAME");
            expect(tables.containsAll(Arrays.asList("customers", "orders", "products", "types")),
                    "getTables(shop): " + tables);
            TreeSet<String> billing = column(md.getTables("billing", null, "%", null), "TABLE_NAME");
            expectEq("[invoices]", billing.toString(), "getTables(billing)");
            md.getTableTypes().close();
            md.getProcedures(c.getCatalog(), null, "%").close();
            md.getFunctions(c.getCatalog(), null, "%").close();
            md.getTypeInfo().close();
            md.getUserName();
            md.getDatabaseProductName();
            md.getDriverVersion();
            return "catalogs " + catalogs + ", tables " + tables;
        }
    }

    static String metadataColumnsAndKeys() throws Exception {
        try (Connection c = alice("shop@prod", "")) {
            DatabaseMetaData md = c.getMetaData();
            TreeSet<String> cols = column(md.getColumns("shop", null, "products", "%"), "COLUMN_NAME");
            expectEq("[id, name, price, sku, stock]", cols.toString(),
                    "getColumns(products) in prod (dev has an extra 'discount')");
            TreeSet<String> typeCols = column(md.getColumns("shop", null, "types", "%"), "COLUMN_NAME");
            expectEq(38, typeCols.size(), "getColumns(types) count");
            TreeSet<String> pk = column(md.getPrimaryKeys("shop", null, "orders"), "COLUMN_NAME");
            expectEq("[id]", pk.toString(), "getPrimaryKeys(orders)");
            TreeSet<String> fk = new TreeSet<>();
            try (ResultSet rs = md.getImportedKeys("shop", null, "orders")) {
                while (rs.next()) {
                    fk.add(rs.getString("FKCOLUMN_NAME") + "->" + rs.getString("PKTABLE_NAME") + "."
                            + rs.getString("PKCOLUMN_NAME"));
                }
            }
            expectEq("[customer_id->customers.id]", fk.toString(), "getImportedKeys(orders)");
            TreeSet<String> idx = column(md.getIndexInfo("shop", null, "products", false, false),
                    "INDEX_NAME");
            expectEq("[PRIMARY, uq_products_sku]", idx.toString(),
                    "getIndexInfo(products) in prod (dev has idx_products_name)");
            md.getExportedKeys("shop", null, "customers").close();
            return "columns, keys and indexes of prod's shop";
        }
    }

    // ---------------------------------------------------------------- policy

    static String writeRefusedText() throws Exception {
        try (Connection c = alice("shop@prod", ""); Statement st = c.createStatement()) {
            try {
                st.executeUpdate("DELETE FROM orders WHERE id = 1");
                throw new Failed("DELETE in prod was not refused");
            } catch (SQLException e) {
                expectEq(1290, e.getErrorCode(), "error code (" + describe(e) + ")");
            }
            expectEq("11", one(c, "SELECT COUNT(*) FROM orders"), "prod's orders after the refusal");
            return "DELETE refused with 1290; the connection still works";
        }
    }

    static String writeRefusedPrepared() throws Exception {
        try (Connection c = alice("shop@prod", "useServerPrepStmts=true")) {
            int code = errorCodeOf(() -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "UPDATE products SET stock = ? WHERE id = ?")) {
                    ps.setInt(1, 0);
                    ps.setInt(2, 1);
                    ps.executeUpdate();
                }
            });
            expectEq(1290, code, "error code of a prepared UPDATE in prod");
            expectEq("120", one(c, "SELECT stock FROM products WHERE id = 1"), "stock after the refusal");
            return "prepared UPDATE refused with 1290";
        }
    }

    // ---------------------------------------------------------------- pools

    static String resetConnection() throws Exception {
        try (Connection c = alice("shop@dev", "useResetConnection=true")) {
            try (Statement st = c.createStatement()) {
                st.execute("SET @compat_var = 42");
                st.execute("CREATE TEMPORARY TABLE compat_reset_tmp (x INT)");
            }
            ((org.mariadb.jdbc.MariaDbConnection) c).reset();
            expectEq(null, one(c, "SELECT @compat_var"), "user variable after reset()");
            int code = errorCodeOf(() -> rows(c, "SELECT * FROM compat_reset_tmp"));
            expectEq(1146, code, "temporary table after reset() (1146 = gone)");
            expectEq("pending", one(c, "SELECT status FROM orders WHERE id = 3"), "dev's order 3");
            return "reset() cleared a user variable and a temporary table";
        }
    }

    static String poolDataSource() throws Exception {
        String url = proxyUrl + "/shop@dev?user=alice&password=alice-pw&" + COMMON
                + "&maxPoolSize=1&minPoolSize=1&useResetConnection=true";
        try (org.mariadb.jdbc.MariaDbPoolDataSource ds = new org.mariadb.jdbc.MariaDbPoolDataSource(url)) {
            long firstId;
            try (Connection c = ds.getConnection(); Statement st = c.createStatement()) {
                firstId = threadId(c);
                st.execute("SET @compat_pool = 7");
                st.execute("USE shop@prod");
            }
            try (Connection c = ds.getConnection()) {
                expectEq(firstId, threadId(c), "thread id of the pool's one connection");
                expectEq(null, one(c, "SELECT @compat_pool"), "user variable seen by the next borrower");
                expectEq("pending", one(c, "SELECT status FROM orders WHERE id = 3"),
                        "the next borrower is back in dev");
            }
            return "the next borrower of the pooled connection starts clean, in dev";
        }
    }
}
