"""What one logged-in account can make the proxy hold or spend with well-formed but huge
statements: the memory of reading a statement is bounded whatever its length."""

import time

import pymysql
import pytest

from harness import is_sanitizer_build

BIG = {"threads": 1}


@pytest.fixture(scope="module")
def big(make_module_proxy):
    return make_module_proxy(BIG)


def test_reading_a_long_statement_takes_bounded_memory(big):
    """A statement of four million tokens (8 MB, "1,1,1,..."): reading it for the session's
    transaction, for LOAD DATA LOCAL and for rewrites kept every token (32 bytes each, some
    20 times the text: 250 MB and more at its peak) in a read-write environment, where no
    token limit refuses it. Now the proxy keeps a bounded number of them; the server's
    answer still comes back and the session goes on."""
    conn = big.connect(read_timeout=60, write_timeout=60)
    text = "SELEC " + "1," * 4_000_000 + "1"
    base = big.rss_kb()
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.ProgrammingError) as e:
            cur.execute(text)
        assert e.value.args[0] == 1064
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
    conn.close()
    grown_mib = (big.peak_rss_kb() - base) / 1024
    # The text itself (8 MB, held once as the packet) and the read-only check's bounded
    # token buffer account for the rest; the sanitizer build's shadow memory is not ours.
    limit = 256 if is_sanitizer_build(big.binary) else 96
    assert grown_mib < limit, f"peak RSS grew {grown_mib:.1f} MiB"
