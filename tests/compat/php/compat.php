<?php
// Compatibility checks for PHP's mysqli and PDO (emulated and server-side prepares) through
// envproxy. Usage: php compat.php PROXY_PORT. Prints one JSON line per check:
// {"check": NAME, "ok": true|false, "detail": "..."}. Accounts of the test harness.
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$port = (int)$argv[1];

function report($name, $fn) {
    try {
        $detail = $fn();
        echo json_encode(["check" => $name, "ok" => true, "detail" => (string)$detail]), "\n";
    } catch (Throwable $e) {
        echo json_encode(["check" => $name, "ok" => false,
                          "detail" => get_class($e) . ": " . $e->getMessage()]), "\n";
    }
}

function expect($got, $want, $what) {
    if ($got !== $want)
        throw new Exception("$what: got " . var_export($got, true) . ", want " . var_export($want, true));
    return "$what ok";
}

function mysqli_conn($db) {
    global $port;
    return new mysqli("127.0.0.1", "alice", "alice-pw", $db, $port);
}

function pdo_conn($db, $emulate) {
    global $port;
    $pdo = new PDO("mysql:host=127.0.0.1;port=$port;dbname=$db;charset=utf8mb4", "alice", "alice-pw",
                   [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
                    PDO::ATTR_EMULATE_PREPARES => $emulate]);
    return $pdo;
}

// ---- mysqli
report("mysqli_connect_prod", function () {
    $c = mysqli_conn("shop@prod");
    $r = $c->query("SELECT DATABASE(), (SELECT 1)")->fetch_row();
    expect($r[0], "shop", "DATABASE()");
    $env = $c->query("SELECT env FROM __envs.session")->fetch_row()[0];
    return expect($env, "prod", "__envs.session env");
});
report("mysqli_prepared_read", function () {
    $c = mysqli_conn("shop@prod");
    $st = $c->prepare("SELECT status FROM orders WHERE id = ?");
    $id = 3;
    $st->bind_param("i", $id);
    $st->execute();
    return expect($st->get_result()->fetch_row()[0], "shipped", "prod order 3");
});
report("mysqli_prepared_envs", function () {
    $c = mysqli_conn("shop@prod");
    $st = $c->prepare("SELECT name, access FROM __envs.environments WHERE name = ?");
    $n = "prod";
    $st->bind_param("s", $n);
    $st->execute();
    $row = $st->get_result()->fetch_row();
    return expect($row, ["prod", "read"], "__envs.environments row");
});
report("mysqli_write_refused_1290", function () {
    $c = mysqli_conn("shop@prod");
    try {
        $c->query("UPDATE orders SET status = 'x' WHERE id = 3");
    } catch (mysqli_sql_exception $e) {
        return expect($e->getCode(), 1290, "error code");
    }
    throw new Exception("the UPDATE was not refused");
});
report("mysqli_transaction_then_use_prod", function () {
    $c = mysqli_conn("shop");
    $c->begin_transaction(MYSQLI_TRANS_START_WITH_CONSISTENT_SNAPSHOT);
    $c->select_db("shop@prod");
    $n = (int)$c->query("SELECT COUNT(*) FROM orders WHERE id = 12")->fetch_row()[0];
    $c->commit();
    return expect($n, 1, "prod-only order 12 inside the transaction");
});
report("mysqli_show_tables_from_db_at_env", function () {
    $c = mysqli_conn("shop");
    $names = array_map(fn($r) => $r[0], $c->query("SHOW TABLES FROM `billing@prod`")->fetch_all());
    return expect(in_array("invoices", $names, true), true, "billing@prod lists invoices");
});

// ---- PDO, emulated and server-side prepares
foreach (["emulated" => true, "server" => false] as $mode => $emulate) {
    report("pdo_{$mode}_prepared_read", function () use ($emulate) {
        $pdo = pdo_conn("shop@prod", $emulate);
        $st = $pdo->prepare("SELECT status FROM orders WHERE id = ?");
        $st->execute([3]);
        return expect($st->fetchColumn(), "shipped", "prod order 3");
    });
    report("pdo_{$mode}_prepared_envs", function () use ($emulate) {
        $pdo = pdo_conn("shop@prod", $emulate);
        $st = $pdo->prepare("SELECT env, `database` FROM __envs.session WHERE user = :u");
        $st->execute([":u" => "alice"]);
        return expect($st->fetch(PDO::FETCH_NUM), ["prod", "shop"], "__envs.session");
    });
    report("pdo_{$mode}_write_refused_1290", function () use ($emulate) {
        $pdo = pdo_conn("shop@prod", $emulate);
        try {
            $st = $pdo->prepare("UPDATE orders SET status = ? WHERE id = 3");
            $st->execute(["x"]);
        } catch (PDOException $e) {
            return expect($e->errorInfo[1], 1290, "driver error code");
        }
        throw new Exception("the UPDATE was not refused");
    });
    report("pdo_{$mode}_information_schema_with_db_at_env", function () use ($emulate) {
        $pdo = pdo_conn("shop", $emulate);
        $st = $pdo->query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'billing@prod'");
        return expect((int)$st->fetchColumn() >= 1, true, "billing@prod tables");
    });
    report("pdo_{$mode}_transaction", function () use ($emulate) {
        $pdo = pdo_conn("shop", $emulate);
        $pdo->beginTransaction();
        $pdo->exec("USE `shop@prod`");
        $n = (int)$pdo->query("SELECT COUNT(*) FROM orders WHERE id = 12")->fetchColumn();
        $pdo->rollBack();
        return expect($n, 1, "prod-only order 12 inside the transaction");
    });
}
