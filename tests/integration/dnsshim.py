"""Builds dns_shim.c (a getaddrinfo for names under .test, see its comment) once per run and
gives the environment variables that preload it into a proxy."""

import os
import subprocess
import tempfile
from pathlib import Path

from harness import is_sanitizer_build

_built = None


def shim_env(binary, delay_ms=3000):
    """env_overrides for Proxy: LD_PRELOAD of the shim (and, for a sanitizer build, leave
    the sanitizer's runtime where the preload puts it)."""
    global _built
    if _built is None:
        out = Path(tempfile.mkdtemp(prefix="envproxy-dnsshim-")) / "dns_shim.so"
        src = Path(__file__).with_name("dns_shim.c")
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(src), "-ldl"],
                       check=True)
        _built = str(out)
    env = {"LD_PRELOAD": _built, "DNS_SHIM_DELAY_MS": str(delay_ms)}
    if is_sanitizer_build(binary):
        env["ASAN_OPTIONS"] = ("detect_leaks=1:abort_on_error=0:verify_asan_link_order=0:"
                               + os.environ.get("ASAN_OPTIONS", ""))
    return env
