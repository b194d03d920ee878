//! Loading mesh directories: every error at once, with file, line and column.

use std::path::Path;

use meshgate_config::{load_mesh, mesh_schema_json, product_schema_json, ColumnType};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

const MESH: &str = "apiVersion: meshgate/v1
kind: Mesh
name: test
sources:
  - name: lake
    kind: files
    options: { url: data }
  - name: db
    kind: sqlite
    options: { path: x.sqlite, password: { env: MESHGATE_TEST_SURELY_UNSET_VAR } }
  - name: lake
    kind: files
  - name: crm
    kind: postgres
    options: { host: db, nested: { password: hunter2 } }
";

const GOOD_PRODUCT: &str = "apiVersion: meshgate/v1
kind: DataProduct
domain: sales
name: orders
owner: { team: sales }
ports:
  - name: orders
    source: lake
    location: orders/
    format: parquet
    columns:
      - { name: id, type: bigint, required: true }
      - { name: total, type: \"decimal(15,2)\" }
";

#[test]
fn every_error_is_reported_with_its_position() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write(d, "mesh.yaml", MESH);
    write(d, "domains/sales/orders.yaml", GOOD_PRODUCT);
    write(
        d,
        "domains/sales/dup.yaml",
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: sales\nname: orders\nowner: { team: x }\nports:\n  - { name: a, source: lake, location: a, format: csv }\n",
    );
    write(
        d,
        "domains/mesh/bad.yaml",
        "apiVersion: meshgate/v1
kind: DataProduct
domain: mesh
name: things
owner: { team: x }
ports:
  - name: p
    source: nowhere
    columns:
      - { name: a, type: varchar2 }
  - name: p
    source: lake
",
    );
    write(
        d,
        "domains/ops/unknown_key.yaml",
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: ops\nname: x\nowner: { team: x }\ncolour: blue\nports: []\n",
    );
    let errors = load_mesh(d).expect_err("invalid").0;
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let find = |needle: &str| {
        errors
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no error containing `{needle}` in {text:#?}"))
    };
    let e = find("duplicate source name `lake`");
    assert_eq!((e.origin.line, e.origin.column), (11, 11), "{e}");
    assert!(e.origin.file.ends_with("mesh.yaml"));
    let e = find("MESHGATE_TEST_SURELY_UNSET_VAR");
    assert_eq!(e.origin.line, 10, "{e}");
    let e = find("reserved");
    assert!(
        e.origin.file.ends_with("bad.yaml") && e.origin.line == 3,
        "{e}"
    );
    let e = find("source `nowhere`");
    assert_eq!((e.origin.line, e.origin.column), (8, 13), "{e}");
    let e = find("unknown column type `varchar2`");
    assert_eq!(e.origin.line, 10, "{e}");
    find("duplicate port name `p`");
    let e = find("colour");
    assert!(
        e.origin.file.ends_with("unknown_key.yaml") && e.origin.line == 6,
        "{e}"
    );
    find("duplicate product `sales.orders`");
    let e = find("`nested.password` holds a credential");
    assert_eq!(e.origin.line, 15, "{e}");
    assert!(!text.iter().any(|t| t.contains("hunter2")), "{text:#?}");
    assert!(errors.len() >= 9, "{text:#?}");
}

#[test]
fn a_missing_mesh_file_and_missing_secret_files_are_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let errors = load_mesh(dir.path()).expect_err("no mesh.yaml").0;
    assert!(errors[0].message.contains("not found"), "{:?}", errors);
    write(
        dir.path(),
        "mesh.yaml",
        "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nsources:\n  - { name: db, kind: sqlite, options: { path: a, password: { file: secrets/pw } } }\n",
    );
    let errors = load_mesh(dir.path()).expect_err("missing secret file").0;
    assert!(errors[0].message.contains("secrets/pw"), "{:?}", errors);
    write(dir.path(), "secrets/pw", "hunter2\n");
    let mesh = load_mesh(dir.path()).expect("valid now");
    let opts = &mesh.sources.values().next().expect("source").options;
    assert_eq!(
        opts["password"], "hunter2",
        "secret resolved, trailing newline dropped"
    );
}

#[test]
fn a_valid_mesh_loads() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "mesh.yaml", "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nsources:\n  - { name: lake, kind: files, options: { url: data } }\n");
    write(dir.path(), "domains/sales/orders.yaml", GOOD_PRODUCT);
    let mesh = load_mesh(dir.path()).expect("valid");
    assert!(
        mesh.sources.values().all(|s| s.federation),
        "federation is on by default"
    );
    let port = mesh.port("sales", "orders", "orders").expect("port");
    let cols = port.columns.as_ref().expect("contract");
    assert_eq!(
        cols[1].data_type,
        ColumnType::Decimal {
            precision: 15,
            scale: 2
        }
    );
    assert!(cols[0].required);
}

#[test]
fn the_demo_mesh_in_the_repository_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let mesh = load_mesh(&dir).expect("demo mesh is valid");
    assert_eq!(mesh.ports().count(), 8);
}

#[test]
fn checked_in_json_schemas_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    for (name, fresh) in [
        ("mesh.schema.json", mesh_schema_json()),
        ("product.schema.json", product_schema_json()),
    ] {
        let path = dir.join(name);
        if std::env::var_os("MESHGATE_REGEN").is_some() {
            std::fs::write(&path, &fresh).expect("write schema");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == fresh,
            "config/schema/{name} is out of date: run `MESHGATE_REGEN=1 cargo test -p meshgate-config`"
        );
    }
}

#[test]
fn security_settings_are_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "mesh.yaml",
        "apiVersion: meshgate/v1
kind: Mesh
name: t
sources:
  - { name: lake, kind: files, options: { url: data } }
auth:
  users:
    - { name: alice, password_hash: \"hunter2\", groups: [a] }
    - { name: bob, password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\" }
  tokens:
    - { name: alice, token_hash: \"sha256:00\" }
  jwt: { issuer: https://idp/, audience: mg, hs256_secret: \"literal-secret\", algorithms: [none] }
  tls: { cert_file: missing.pem, key_file: missing.key }
",
    );
    let errors = load_mesh(dir.path()).expect_err("invalid").0;
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    for needle in [
        "password_hash must be an argon2 PHC string",
        "principal `alice` is declared twice",
        "token_hash must be `sha256:<64 hex digits>`",
        "hs256_secret must be a secret reference",
        "algorithm `NONE` is not supported",
        "cert_file",
    ] {
        assert!(all.contains(needle), "`{needle}` in:\n{all}");
    }
    assert!(
        !all.contains("hunter2") || all.contains("password_hash must"),
        "{all}"
    );
    assert!(
        !all.contains("literal-secret"),
        "secrets are never echoed:\n{all}"
    );
    write(
        dir.path(),
        "mesh.yaml",
        "apiVersion: meshgate/v1\nkind: Mesh\nname: t\npolicies:\n  classifications:\n    pii: { mask: scramble }\n",
    );
    let errors = load_mesh(dir.path()).expect_err("unknown mask").0;
    assert!(errors[0].message.contains("scramble"), "{errors:?}");

    write(
        dir.path(),
        "mesh.yaml",
        "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nsources:\n  - { name: lake, kind: files, options: { url: data } }\n",
    );
    let product = GOOD_PRODUCT.replace(
        "ports:\n",
        "access:\n  read: [group:a, analysts, \"user:\"]\n  row_filters:\n    - { where: \"x > 1\", ports: [nope] }\nports:\n",
    );
    write(dir.path(), "domains/sales/orders.yaml", &product);
    let errors = load_mesh(dir.path()).expect_err("invalid access").0;
    let all: String = errors.iter().map(|e| format!("{e}\n")).collect();
    for needle in [
        "`analysts` is not a grantee",
        "`user:` is not a grantee",
        "name the `groups` or `users`",
        "`nope` is not a port of this product",
    ] {
        assert!(all.contains(needle), "`{needle}` in:\n{all}");
    }
}
