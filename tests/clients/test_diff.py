"""`meshgate diff OLD NEW`: every class of change a consumer cares about, in text, markdown
and JSON, with the exit codes CI relies on (0 compatible, 2 breaking, 1 error)."""

import json
import pathlib
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT

DEMO = ROOT / "config" / "examples" / "demo"
CRM = "domains/customers/crm.yaml"
ORDERS = "domains/sales/orders.yaml"
# The foreign keys of sales.orders.lineitem into the supply product.
SUPPLY_FKS = "".join(line + "\n" for line in (DEMO / ORDERS).read_text().splitlines() if "references: supply." in line)


def diff(old, new, fmt="json"):
    r = subprocess.run([BIN, "diff", str(old), str(new), "--format", fmt], capture_output=True, text=True, timeout=60)
    return r


def variant(tmp_path: pathlib.Path, name: str, edits):
    """A copy of the demo mesh with `edits`: {file: [(old, new), ...]} (new None deletes the file)."""
    d = tmp_path / name
    shutil.copytree(DEMO, d)
    for rel, changes in edits.items():
        p = d / rel
        if changes is None:
            p.unlink()
            continue
        text = p.read_text()
        for old, new in changes:
            assert old in text, f"{old!r} not in {rel}"
            text = text.replace(old, new)
        p.write_text(text)
    return d


def kinds(r, cls=None):
    report = json.loads(r.stdout)
    return {(c["kind"], c.get("port")) for c in report["changes"] if cls is None or c["class"] == cls}


def test_no_changes(tmp_path):
    r = diff(DEMO, variant(tmp_path, "same", {}), "text")
    assert r.returncode == 0 and r.stdout.strip() == "no changes", r.stdout + r.stderr


@pytest.mark.parametrize(
    "edits, expected",
    [
        ({CRM: [("      - { name: c_comment, type: string, description: Free-text comment. }\n", "")]},
         {("column_removed", "customer"), ("version_not_bumped", "customer")}),
        ({CRM: [("name: c_mktsegment,", "name: c_segment,")]}, {("column_renamed", "customer")}),
        ({CRM: [("name: c_name, type: string", "name: c_name, type: bigint")]}, {("type_changed", "customer")}),
        ({CRM: [("name: c_comment, type: string, description", "name: c_comment, type: string, required: true, description")]},
         {("column_required", "customer")}),
        ({CRM: [("name: c_custkey, type: bigint, required: true", "name: c_custkey, type: bigint")]},
         {("column_nullable", "customer")}),
        ({CRM: [("  - name: region\n", "  - name: regions\n"),
                ("references: customers.crm.region,", "references: customers.crm.regions,")]},
         {("port_moved", "region")}),
        ({CRM: [("  - name: region\n    description: The 5 regions.\n    source: crm_db\n    table: region\n", "  - name: region\n    description: The 5 regions.\n    source: crm_db\n    table: nation\n")]},
         set()),
        ({"domains/supply/catalog.yaml": None, ORDERS: [(SUPPLY_FKS, "")]}, {("product_removed", None)}),
    ],
    ids=["column removed", "column renamed", "type changed", "became required", "became nullable",
         "port moved", "binding changed", "product removed"],
)
def test_breaking_changes(tmp_path, edits, expected):
    new = variant(tmp_path, "new", edits)
    r = diff(DEMO, new)
    if not expected:
        assert r.returncode == 0, r.stdout + r.stderr
        assert ("binding_changed", "region") in kinds(r, "compatible")
        return
    assert r.returncode == 2, r.stdout + r.stderr
    assert expected <= kinds(r, "breaking"), r.stdout
    assert json.loads(r.stdout)["breaking"] is True


def test_a_version_bump_acknowledges_a_breaking_change(tmp_path):
    new = variant(tmp_path, "bumped", {CRM: [
        ("      - { name: c_comment, type: string, description: Free-text comment. }\n", ""),
        ("    table: customer\n", "    table: customer\n    version: 2\n"),
    ]})
    r = diff(DEMO, new)
    assert r.returncode == 2
    got = kinds(r)
    assert ("column_removed", "customer") in got and ("version_not_bumped", "customer") not in got, got


def test_compatible_changes(tmp_path):
    new = variant(tmp_path, "compatible", {
        CRM: [
            ("name: c_acctbal, type: \"decimal(15,2)\"", "name: c_acctbal, type: \"decimal(18,2)\""),
            ("      - { name: c_comment, type: string, description: Free-text comment. }\n",
             "      - { name: c_comment, type: string, description: Free-text comment. }\n"
             "      - { name: c_loyalty, type: int, description: Loyalty tier. }\n"),
            ("owner: { team: customer-platform, email: crm-data@example.com }", "owner: { team: crm-team }"),
            ("tags: [customers, tpch]", "tags: [customers, tpch, gold]"),
            ("description: Market segment.", "description: Market segment of the customer."),
        ],
    })
    r = diff(DEMO, new)
    assert r.returncode == 0, r.stdout + r.stderr
    got = kinds(r, "compatible")
    for k in [("type_widened", "customer"), ("column_added", "customer"), ("owner_changed", None),
              ("tags_changed", None), ("description_changed", "customer")]:
        assert k in got, (k, got)
    assert kinds(r, "breaking") == set()


def test_policy_changes_are_listed_apart(tmp_path):
    new = variant(tmp_path, "policy", {
        ORDERS: [("read: [group:analysts, user:nightly-etl]", "read: [group:analysts, group:partners]")],
        CRM: [
            ("  row_filters:\n", "  row_filters: []\n"),
            ("    - { groups: [emea], ports: [customer], where: \"c_nationkey IN (6, 7, 19, 22, 23)\" }\n", ""),
            ("description: Phone number., classification: pii", "description: Phone number."),
            ("name: c_mktsegment, type: string, required: true, description: Market segment.",
             "name: c_mktsegment, type: string, required: true, description: Market segment., classification: pii"),
        ],
        "mesh.yaml": [("pii: { mask: hash, unmask_groups: [pii-readers] }", "pii: { mask: hash, unmask_groups: [pii-readers, analysts] }")],
    })
    r = diff(DEMO, new)
    assert r.returncode == 0, "policy changes alone do not fail CI: " + r.stdout
    got = kinds(r, "policy")
    for k in [("access_narrowed", None), ("access_widened", None), ("row_filter_removed", None),
              ("classification_relaxed", "customer"), ("classification_tightened", "customer"),
              ("classification_relaxed", None)]:
        assert k in got, (k, got)
    md = diff(DEMO, new, "markdown")
    assert "### Policy changes" in md.stdout and "user:nightly-etl" in md.stdout


def test_markdown_and_text_reports(tmp_path):
    new = variant(tmp_path, "md", {CRM: [("name: c_name, type: string", "name: c_name, type: bigint")]})
    md = diff(DEMO, new, "markdown")
    assert md.returncode == 2
    assert md.stdout.startswith("## meshgate: data product changes")
    assert "### Breaking changes" in md.stdout and "| `customers.crm` | `customer` | type_changed |" in md.stdout
    text = diff(DEMO, new, "text")
    assert "BREAKING" in text.stdout and "c_name" in text.stdout


def test_errors_exit_1(tmp_path):
    r = diff(DEMO, tmp_path / "missing")
    assert r.returncode == 1 and "not a valid mesh" in r.stderr
    broken = variant(tmp_path, "broken", {CRM: [("source: crm_db", "source: nowhere")]})
    r = diff(DEMO, broken)
    assert r.returncode == 1 and "nowhere" in r.stderr


def test_unset_secrets_do_not_stop_a_diff():
    r = diff(ROOT / "config" / "examples" / "sql", ROOT / "config" / "examples" / "sql", "text")
    assert r.returncode == 0, r.stderr


def test_the_ci_workflow_runs_commands_that_exist(tmp_path):
    """The example GitHub workflow's commands, run here against the demo mesh as base and head."""
    import yaml as _yaml

    wf = _yaml.safe_load((ROOT / "config/examples/ci/.github/workflows/mesh.yml").read_text())
    steps = wf["jobs"]["check"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert 'meshgate validate "$MESH_DIR"' in runs
    diff_line = [line.strip() for line in runs.splitlines() if line.strip().startswith("meshgate diff")][0]
    base = tmp_path / "base"
    (base / "mesh").parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(DEMO, base / "mesh")
    head = variant(tmp_path, "mesh", {CRM: [("name: c_name, type: string", "name: c_name, type: bigint")]})
    cmd = diff_line.replace("meshgate", BIN, 1).replace('"/tmp/base/$MESH_DIR"', str(base / "mesh")).replace('"$MESH_DIR"', str(head))
    cmd = cmd.split(">")[0]
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "### Breaking changes" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([BIN, "validate", str(head)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
