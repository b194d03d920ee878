"""ODCS v3 interoperability: exported contracts pass `datacontract lint` (datacontract-cli),
ports can take their contract from an ODCS document, and import(export(x)) == x."""

import pathlib
import shutil
import subprocess
import sys

import yaml

from conftest import BIN, ROOT

DEMO = ROOT / "config" / "examples" / "demo"
PORTS = ["sales.orders.orders", "sales.orders.lineitem", "customers.crm.customer", "customers.crm.nation",
         "customers.crm.region", "supply.catalog.part", "supply.catalog.supplier", "supply.catalog.partsupp"]
DATACONTRACT = pathlib.Path(sys.executable).parent / "datacontract"


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_exported_contracts_pass_datacontract_lint(tmp_path):
    for port in PORTS:
        out = tmp_path / f"{port}.odcs.yaml"
        r = run(BIN, "contract", "export", port, "--config", DEMO, "--output", out)
        assert r.returncode == 0, r.stderr
        doc = yaml.safe_load(out.read_text())
        assert doc["apiVersion"] == "v3.0.2" and doc["kind"] == "DataContract" and doc["id"] == port
        lint = run(DATACONTRACT, "lint", out)
        assert lint.returncode == 0, f"{port}: {lint.stdout}{lint.stderr}"
        assert "valid" in lint.stdout
    doc = yaml.safe_load(run(BIN, "contract", "export", "customers.crm.customer", "--config", DEMO).stdout)
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert props["c_phone"]["classification"] == "pii" and props["c_custkey"]["required"] is True
    assert props["c_acctbal"]["physicalType"] == "decimal(15,2)" and props["c_acctbal"]["logicalType"] == "number"


def test_lint_is_not_vacuous(tmp_path):
    out = tmp_path / "bad.odcs.yaml"
    text = run(BIN, "contract", "export", "sales.orders.orders", "--config", DEMO).stdout
    out.write_text(text.replace("logicalType: integer", "logicalType: banana", 1))
    assert run(DATACONTRACT, "lint", out).returncode != 0


def test_import_of_export_is_identity(tmp_path):
    """Every port of the demo takes its contract from its exported ODCS document instead of
    inline columns: `meshgate diff` sees no change at all."""
    mesh = tmp_path / "mesh"
    shutil.copytree(DEMO, mesh)
    for product_file in (mesh / "domains").rglob("*.yaml"):
        product = yaml.safe_load(product_file.read_text())
        for port in product["ports"]:
            name = f"{product['domain']}.{product['name']}.{port['name']}"
            odcs = product_file.parent / f"{port['name']}.odcs.yaml"
            r = run(BIN, "contract", "export", name, "--config", DEMO, "--output", odcs)
            assert r.returncode == 0, r.stderr
            del port["columns"]
            port["contract"] = odcs.name
        product_file.write_text(yaml.safe_dump(product, sort_keys=False))
    # ODCS documents (`*.odcs.yaml`) sit next to the product files; they are not product files.
    r = run(BIN, "validate", mesh)
    assert r.returncode == 0, r.stderr
    r = run(BIN, "diff", DEMO, mesh, "--format", "text")
    assert r.returncode == 0 and r.stdout.strip() == "no changes", r.stdout + r.stderr
    # And exporting the imported contract gives the same document.
    a = run(BIN, "contract", "export", "customers.crm.customer", "--config", DEMO).stdout
    b = run(BIN, "contract", "export", "customers.crm.customer", "--config", mesh).stdout
    assert a == b


def test_freshness_and_errors(tmp_path):
    mesh = tmp_path / "mesh"
    shutil.copytree(DEMO, mesh)
    doc = yaml.safe_load(run(BIN, "contract", "export", "customers.crm.region", "--config", DEMO).stdout)
    doc["slaProperties"] = [{"property": "freshness", "value": 24, "unit": "h"}]
    (mesh / "contracts").mkdir()
    (mesh / "contracts" / "region.odcs.yaml").write_text(yaml.safe_dump(doc))
    crm = mesh / "domains" / "customers" / "crm.yaml"
    product = yaml.safe_load(crm.read_text())
    region = [p for p in product["ports"] if p["name"] == "region"][0]
    del region["columns"]
    region["contract"] = "../../contracts/region.odcs.yaml"
    crm.write_text(yaml.safe_dump(product, sort_keys=False))
    r = run(BIN, "contract", "export", "customers.crm.region", "--config", mesh)
    assert r.returncode == 0, r.stderr
    again = yaml.safe_load(r.stdout)
    assert again["slaProperties"] == [{"property": "freshness", "value": 24, "unit": "h"}]
    lint_file = tmp_path / "again.yaml"
    lint_file.write_text(r.stdout)
    assert run(DATACONTRACT, "lint", lint_file).returncode == 0

    # Both `columns` and `contract`, or a document that is not ODCS: clear errors.
    region["columns"] = [{"name": "r_regionkey", "type": "bigint"}]
    crm.write_text(yaml.safe_dump(product, sort_keys=False))
    r = run(BIN, "validate", mesh)
    assert r.returncode == 1 and "either `columns` or `contract`" in r.stderr, r.stderr
    del region["columns"]
    (mesh / "contracts" / "region.odcs.yaml").write_text("apiVersion: v2\nkind: Something\n")
    crm.write_text(yaml.safe_dump(product, sort_keys=False))
    r = run(BIN, "validate", mesh)
    assert r.returncode == 1 and "expected an ODCS v3 document" in r.stderr, r.stderr
