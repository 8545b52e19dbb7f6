# Compatibility checks for Ruby's mysql2 gem through envproxy.
# Usage: ruby compat.rb PROXY_PORT. Prints one JSON line per check:
# {"check": NAME, "ok": true|false, "detail": "..."}.
require "json"
require "mysql2"

PORT = Integer(ARGV[0])

def report(name)
  detail = yield
  puts JSON.generate({check: name, ok: true, detail: detail.to_s})
rescue StandardError => e
  puts JSON.generate({check: name, ok: false, detail: "#{e.class}: #{e.message}"})
end

def expect(got, want, what)
  raise "#{what}: got #{got.inspect}, want #{want.inspect}" unless got == want
  "#{what} ok"
end

def conn(db)
  Mysql2::Client.new(host: "127.0.0.1", port: PORT, username: "alice", password: "alice-pw",
                     database: db, encoding: "utf8mb4", connect_timeout: 5)
end

report("mysql2_connect_prod") do
  c = conn("shop@prod")
  expect(c.query("SELECT DATABASE() AS d").first["d"], "shop", "DATABASE()")
  expect(c.query("SELECT env FROM __envs.session").first["env"], "prod", "__envs.session env")
end

report("mysql2_prepared_read") do
  st = conn("shop@prod").prepare("SELECT status FROM orders WHERE id = ?")
  expect(st.execute(3).first["status"], "shipped", "prod order 3")
end

report("mysql2_prepared_envs") do
  st = conn("shop@prod").prepare("SELECT name, access FROM __envs.environments WHERE name = ?")
  row = st.execute("prod").first
  expect([row["name"], row["access"]], ["prod", "read"], "__envs.environments row")
end

report("mysql2_write_refused_1290") do
  begin
    conn("shop@prod").query("UPDATE orders SET status = 'x' WHERE id = 3")
    raise "the UPDATE was not refused"
  rescue Mysql2::Error => e
    expect(e.error_number, 1290, "error number")
  end
end

report("mysql2_transaction_then_use_prod") do
  c = conn("shop")
  c.query("START TRANSACTION")
  c.select_db("shop@prod")
  n = c.query("SELECT COUNT(*) AS n FROM orders WHERE id = 12").first["n"]
  c.query("COMMIT")
  expect(n, 1, "prod-only order 12 inside the transaction")
end

report("mysql2_schema_names") do
  c = conn("shop")
  rows = c.query("SHOW TABLES FROM `billing@prod`").map { |r| r.values.first }
  expect(rows.include?("invoices"), true, "billing@prod lists invoices")
  n = c.query("SELECT COUNT(*) AS n FROM `shop@prod`.orders WHERE id = 12").first["n"]
  expect(n, 1, "`shop@prod`.orders")
end
