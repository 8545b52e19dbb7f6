// Compatibility checks for Go's database/sql with go-sql-driver/mysql through envproxy,
// with interpolateParams=false (server-side prepared statements) and true (values written
// into the text by the driver). Usage: go run compat.go PROXY_PORT. Prints one JSON line
// per check: {"check": NAME, "ok": true|false, "detail": "..."}.
package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/go-sql-driver/mysql"
)

var port string

func report(name string, fn func() (string, error)) {
	detail, err := fn()
	ok := err == nil
	if err != nil {
		detail = err.Error()
	}
	line, _ := json.Marshal(map[string]interface{}{"check": name, "ok": ok, "detail": detail})
	fmt.Println(string(line))
}

func open(db string, interpolate bool) (*sql.DB, error) {
	dsn := fmt.Sprintf("alice:alice-pw@tcp(127.0.0.1:%s)/%s?interpolateParams=%t&timeout=5s",
		port, db, interpolate)
	d, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	d.SetMaxOpenConns(1)
	return d, nil
}

func expect(got, want interface{}, what string) (string, error) {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return "", fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return what + " ok", nil
}

func main() {
	port = os.Args[1]
	for _, interpolate := range []bool{false, true} {
		interpolate := interpolate
		mode := map[bool]string{false: "prepared", true: "interpolated"}[interpolate]
		report("go_"+mode+"_connect_prod", func() (string, error) {
			d, err := open("shop@prod", interpolate)
			if err != nil {
				return "", err
			}
			defer d.Close()
			var db, env string
			if err := d.QueryRow("SELECT DATABASE()").Scan(&db); err != nil {
				return "", err
			}
			if err := d.QueryRow("SELECT env FROM __envs.session").Scan(&env); err != nil {
				return "", err
			}
			return expect(db+"/"+env, "shop/prod", "database/env")
		})
		report("go_"+mode+"_read_with_args", func() (string, error) {
			d, err := open("shop@prod", interpolate)
			if err != nil {
				return "", err
			}
			defer d.Close()
			var s string
			if err := d.QueryRow("SELECT status FROM orders WHERE id = ?", 3).Scan(&s); err != nil {
				return "", err
			}
			return expect(s, "shipped", "prod order 3")
		})
		report("go_"+mode+"_envs_with_args", func() (string, error) {
			d, err := open("shop@prod", interpolate)
			if err != nil {
				return "", err
			}
			defer d.Close()
			var n, a string
			err = d.QueryRow("SELECT name, access FROM __envs.environments WHERE name = ?", "prod").Scan(&n, &a)
			if err != nil {
				return "", err
			}
			return expect(n+"/"+a, "prod/read", "__envs.environments row")
		})
		report("go_"+mode+"_write_refused_1290", func() (string, error) {
			d, err := open("shop@prod", interpolate)
			if err != nil {
				return "", err
			}
			defer d.Close()
			_, err = d.Exec("UPDATE orders SET status = ? WHERE id = 3", "x")
			var me *mysql.MySQLError
			if !errors.As(err, &me) {
				return "", fmt.Errorf("want a MySQLError, got %v", err)
			}
			return expect(me.Number, 1290, "error number")
		})
		report("go_"+mode+"_transaction_then_use_prod", func() (string, error) {
			d, err := open("shop", interpolate)
			if err != nil {
				return "", err
			}
			defer d.Close()
			tx, err := d.Begin()
			if err != nil {
				return "", err
			}
			defer tx.Rollback()
			if _, err := tx.Exec("USE `shop@prod`"); err != nil {
				return "", err
			}
			var n int
			if err := tx.QueryRow("SELECT COUNT(*) FROM orders WHERE id = ?", 12).Scan(&n); err != nil {
				return "", err
			}
			if err := tx.Commit(); err != nil {
				return "", err
			}
			return expect(n, 1, "prod-only order 12 inside the transaction")
		})
		report("go_"+mode+"_schema_names", func() (string, error) {
			d, err := open("shop", interpolate)
			if err != nil {
				return "", err
			}
			defer d.Close()
			var n int
			err = d.QueryRow("SELECT COUNT(*) FROM `shop@prod`.orders WHERE id = ?", 12).Scan(&n)
			if err != nil {
				return "", err
			}
			return expect(n, 1, "`shop@prod`.orders")
		})
	}
}
