"""MariaDB's extended type metadata (MARIADB_CLIENT_EXTENDED_METADATA): offered in the
greeting, passed through to the clients that ask for it (the Node `mariadb` connector and
mysql2 then see JSON columns as JSON, also when the proxy answers from statement metadata
it kept), and left out for clients that do not ask (PyMySQL reads plain definitions)."""

import socket
import struct

import pytest

from compat_helpers import run_checks

NODE_RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def node_json(proxy, node_dir):
    cmd = ["node", str(node_dir / "json_columns.js"), str(proxy.port)]
    return run_checks("json_columns.js", cmd, cwd=node_dir, timeout=NODE_RUN_TIMEOUT)


@pytest.mark.parametrize("check", ["mariadb_query_json_is_object",
                                   "mariadb_execute_json_is_object_also_from_kept_metadata",
                                   "mysql2_query_and_execute_json_is_object",
                                   "mariadb_local_answers_carry_empty_extended_metadata"])
def test_node_clients_see_json_columns_as_json(node_json, check):
    node_json.check(check)


def test_greeting_offers_extended_metadata_as_mariadb_does(proxy):
    """The greeting leaves out CLIENT_MYSQL (bit 0) and carries the extended capabilities
    with EXTENDED_METADATA (1 << 35) in the last 4 of its 10 reserved bytes."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        head = s.recv(4, socket.MSG_WAITALL)
        payload = s.recv(struct.unpack("<I", head[:3] + b"\0")[0], socket.MSG_WAITALL)
    p = payload.index(b"\0", 1) + 1  # after the version string
    p += 4 + 8 + 1  # thread id, scramble part 1, filler
    caps_low = struct.unpack("<H", payload[p:p + 2])[0]
    p += 2 + 1 + 2  # caps low, charset, status
    caps_high = struct.unpack("<H", payload[p:p + 2])[0]
    p += 2 + 1  # caps high, auth data length
    ext = struct.unpack("<I", payload[p + 6:p + 10])[0]
    assert not (caps_low | caps_high << 16) & 1
    assert ext & (1 << 3)


def test_plain_client_gets_plain_definitions(proxy):
    """PyMySQL does not ask: its column definitions parse (a stray extended-metadata string
    would shift every field), for a backend result, a prepared-statement-free local answer
    and a virtual table."""
    conn = proxy.connect(database="shop@prod")
    with conn.cursor() as cur:
        cur.execute("SELECT id, c_json FROM types ORDER BY id LIMIT 1")
        names = [d[0] for d in cur.description]
        assert names == ["id", "c_json"]
        assert cur.description[0][1] == 3  # LONG: the type byte was read where it is
        cur.execute("SELECT name FROM __envs.environments ORDER BY name")
        assert cur.fetchall() == (("dev",), ("prod",))
        cur.execute("SELECT @@version_comment")
        assert "envproxy" in cur.fetchone()[0]
    conn.close()
