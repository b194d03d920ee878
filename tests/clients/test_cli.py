"""The `meshgate` command line as a user meets it: validate's exit codes and messages."""

import pathlib
import subprocess

from conftest import BIN, ROOT


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def test_validate_accepts_the_demo_mesh():
    r = run("validate", str(ROOT / "config" / "examples" / "demo"))
    assert r.returncode == 0, r.stderr
    assert "valid (3 sources, 3 domains, 8 ports)" in r.stdout
    # The mesh's mesh.yaml names the same mesh as its directory.
    r = run("validate", str(ROOT / "config" / "examples" / "demo" / "mesh.yaml"))
    assert r.returncode == 0, r.stderr
    assert "valid (3 sources, 3 domains, 8 ports)" in r.stdout


def test_validate_lists_every_error_with_positions(tmp_path: pathlib.Path):
    (tmp_path / "domains" / "x").mkdir(parents=True)
    (tmp_path / "mesh.yaml").write_text(
        "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nsources:\n"
        "  - { name: lake, kind: files, options: { url: data, colour: red } }\n"
        "  - { name: db, kind: oracle }\n"
    )
    (tmp_path / "domains" / "x" / "p.yaml").write_text(
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: x\nname: p\nowner: { team: t }\nports:\n"
        "  - { name: a, source: lake, location: a.csv, format: xlsx }\n"
        "  - { name: b, source: missing }\n"
    )
    r = run("validate", str(tmp_path))
    assert r.returncode == 1
    err = r.stderr
    assert "mesh.yaml:5:" in err and "colour" in err, err
    assert "unknown kind `oracle`" in err, err
    assert "p.yaml:7:" in err and "unknown format `xlsx`" in err, err
    assert "source `missing`" in err, err


def test_validate_on_a_missing_directory_fails_cleanly(tmp_path: pathlib.Path):
    r = run("validate", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert "mesh.yaml: file not found" in r.stderr
    assert "panicked" not in r.stderr


def test_serve_with_an_invalid_mesh_exits_with_the_errors(tmp_path: pathlib.Path):
    r = run("serve", "--config", str(tmp_path), "--flight-addr", "127.0.0.1:0")
    assert r.returncode == 1
    assert "file not found" in r.stderr


def test_serve_logs_json_and_starts_with_unavailable_sources(tmp_path: pathlib.Path):
    """The checked-in demo mesh without its data: every port is unavailable, the gateway still
    starts, says so in JSON log lines, and stops cleanly on SIGTERM."""
    import json
    import re
    import signal

    proc = subprocess.Popen(
        [BIN, "--log-format", "json", "serve", "--config", str(ROOT / "config" / "examples" / "demo"),
         "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--audit-log", str(tmp_path / "audit.log"),
         "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    records = []
    try:
        for line in proc.stderr:
            records.append(json.loads(line))
            if "serving" in records[-1].get("fields", {}).get("message", ""):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    messages = [r["fields"].get("message", "") for r in records]
    assert any("port not served" in m for m in messages), messages
    loaded = [r for r in records if r["fields"].get("message") == "mesh loaded"][0]
    assert loaded["fields"]["ports"] == 0 and loaded["fields"]["unavailable"] == 8
    assert re.match(r"127\.0\.0\.1:\d+", [r for r in records if "serving" in r["fields"].get("message", "")][0]["fields"]["addr"])


def test_validate_checks_policies_against_contracts(tmp_path: pathlib.Path):
    (tmp_path / "domains" / "x").mkdir(parents=True)
    (tmp_path / "mesh.yaml").write_text(
        "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nsources:\n"
        "  - { name: lake, kind: files, options: { url: data } }\n"
        "auth:\n  users:\n    - { name: a, password_hash: \"$argon2id$broken\" }\n"
    )
    (tmp_path / "domains" / "x" / "p.yaml").write_text(
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: x\nname: p\nowner: { team: t }\n"
        "access:\n  read: [\"*\"]\n  row_filters:\n"
        "    - { groups: [g], where: \"regoin = 'EU'\" }\n"
        "    - { groups: [g], where: \"region IN (\" }\n"
        "ports:\n  - { name: a, source: lake, location: a.csv, format: csv, columns: [ { name: region, type: string } ] }\n"
    )
    r = run("validate", str(tmp_path))
    assert r.returncode == 1
    assert "no port of x.p has every column" in r.stderr and "regoin" in r.stderr, r.stderr
    assert "is not a SQL expression" in r.stderr, r.stderr
    assert "password_hash is not a valid PHC string" in r.stderr, r.stderr


def live_copy(demo_data: pathlib.Path, dest: pathlib.Path, edits=()):
    """The generated demo mesh (its data linked, not copied) with text edits to its files."""
    import shutil

    shutil.copytree(demo_data, dest, ignore=shutil.ignore_patterns("data", "*.log", "state"))
    (dest / "data").symlink_to(demo_data / "data")
    for rel, old, new in edits:
        p = dest / rel
        text = p.read_text()
        assert old in text, (rel, old)
        p.write_text(text.replace(old, new))
    return dest


def test_validate_live_on_the_demo_and_its_drift(gateway, tmp_path: pathlib.Path):
    import json

    ok = live_copy(gateway["data"], tmp_path / "ok")
    r = run("validate", "--live", str(ok))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "8 ports checked: 8 ok, 0 not" in r.stdout

    drift = live_copy(gateway["data"], tmp_path / "drift", [
        ("domains/customers/crm.yaml", "name: c_phone,", "name: c_telephone,"),
        ("domains/customers/crm.yaml", "name: c_name, type: string", "name: c_name, type: bigint"),
        ("domains/sales/orders.yaml", "location: orders.parquet", "location: orders-2024.parquet"),
        ("mesh.yaml", "sources:\n", "sources:\n  - { name: far, kind: postgres, options: { host: 127.0.0.1, port: 1, database: x, user: x, password: { env: HOME }, connect_timeout_ms: 1000 } }\n"),
        ("domains/supply/catalog.yaml", "ports:\n", "ports:\n  - { name: remote, source: far, table: t }\n"),
    ])
    r = run("validate", "--live", str(drift))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DRIFT        customers.crm.customer" in r.stdout
    assert "column `c_telephone` is missing from the source" in r.stdout
    assert "`c_name` is Utf8 in the source, incompatible with the contract's bigint" in r.stdout
    assert "MISSING      sales.orders.orders" in r.stdout
    assert "UNREACHABLE  supply.catalog.remote" in r.stdout and "127.0.0.1:1" in r.stdout
    assert "ok           supply.catalog.part" in r.stdout

    r = run("validate", "--live", "--format", "json", str(drift))
    assert r.returncode == 1
    report = json.loads(r.stdout)
    status = {p["port"]: p["status"] for p in report["ports"]}
    assert status["customers.crm.customer"] == "drift" and status["sales.orders.orders"] == "missing"
    assert status["supply.catalog.remote"] == "unreachable" and status["customers.crm.nation"] == "ok"
    assert report["live"] is False
