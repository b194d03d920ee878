//! `meshgate diff`: what changes for consumers between two versions of a mesh.
//!
//! Every change is *breaking* (consumers' queries or assumptions may fail), *compatible*, or
//! a *policy* change (who may read what, and how masked). Ports may carry `version: N`; a
//! breaking change to a port whose version did not increase is itself breaking.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::doc::DefaultAccess;
use crate::model::{Column, Grantee, Mesh, Port, Product};
use crate::types::ColumnType;

/// The class of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeClass {
    /// May break consumers.
    Breaking,
    /// Safe for consumers.
    Compatible,
    /// Access or masking changed.
    Policy,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its class.
    pub class: ChangeClass,
    /// `domain.product`, or `mesh` for mesh-wide policies.
    pub product: String,
    /// The port, when the change is about one.
    pub port: Option<String>,
    /// A stable identifier of the kind of change (`column_removed`, `type_widened`, ...).
    pub kind: &'static str,
    /// What changed, as a sentence.
    pub message: String,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Whether any change is breaking.
    pub breaking: bool,
    /// Every change, breaking first.
    pub changes: Vec<Change>,
}

/// Whether a value of `from` always fits `to` unchanged (a widening).
pub fn is_widening(from: ColumnType, to: ColumnType) -> bool {
    use ColumnType::*;
    if from == to {
        return true;
    }
    let int_rank = |t| match t {
        TinyInt => Some(1),
        SmallInt => Some(2),
        Int => Some(3),
        BigInt => Some(4),
        _ => None,
    };
    match (from, to) {
        (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => int_rank(a) < int_rank(b),
        (TinyInt | SmallInt, Float) | (TinyInt | SmallInt | Int, Double) => true,
        (Float, Double) => true,
        (
            Decimal {
                precision: p1,
                scale: s1,
            },
            Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && (p2 as i16 - s2 as i16) >= (p1 as i16 - s1 as i16),
        (
            a,
            Decimal {
                precision, scale, ..
            },
        ) if int_rank(a).is_some() => {
            let digits = match a {
                TinyInt => 3,
                SmallInt => 5,
                Int => 10,
                _ => 19,
            };
            precision as i16 - scale as i16 >= digits
        }
        (Date, Timestamp) => true,
        _ => false,
    }
}

struct Builder {
    changes: Vec<Change>,
}

impl Builder {
    fn push(
        &mut self,
        class: ChangeClass,
        product: &str,
        port: Option<&str>,
        kind: &'static str,
        message: String,
    ) {
        self.changes.push(Change {
            class,
            product: product.to_string(),
            port: port.map(str::to_string),
            kind,
            message,
        });
    }
}

fn products(mesh: &Mesh) -> BTreeMap<String, &Product> {
    mesh.domains
        .values()
        .flat_map(|d| d.products.values())
        .map(|p| (format!("{}.{}", p.domain, p.name), p))
        .collect()
}

/// Where a port reads from, to recognise a port that moved to another name.
fn binding_key(p: &Port) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}",
        p.source, p.binding.table, p.binding.query, p.binding.location, p.binding.format
    )
}

/// Compares two meshes.
pub fn diff_meshes(old: &Mesh, new: &Mesh) -> DiffReport {
    let mut b = Builder { changes: vec![] };
    mesh_policies(old, new, &mut b);
    let (po, pn) = (products(old), products(new));
    // Ports that disappeared under one name and appeared under another with the same binding.
    let mut old_ports: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, p) in &po {
        for port in &p.ports {
            old_ports.insert(binding_key(port), (name.clone(), port.name.to_string()));
        }
    }
    let mut moved_to: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, p) in &pn {
        for port in &p.ports {
            let still_there = po
                .get(name)
                .is_some_and(|op| op.ports.iter().any(|x| x.name == port.name));
            if still_there {
                continue;
            }
            if let Some((op, oport)) = old_ports.get(&binding_key(port)) {
                let gone = pn
                    .get(op)
                    .is_none_or(|np| !np.ports.iter().any(|x| x.name.as_str() == oport));
                if gone {
                    moved_to.insert((op.clone(), oport.clone()), format!("{name}.{}", port.name));
                }
            }
        }
    }
    for (name, old_p) in &po {
        match pn.get(name) {
            None => {
                b.push(
                    ChangeClass::Breaking,
                    name,
                    None,
                    "product_removed",
                    format!("product {name} was removed"),
                );
                for port in &old_p.ports {
                    if let Some(to) = moved_to.get(&(name.clone(), port.name.to_string())) {
                        b.push(
                            ChangeClass::Breaking,
                            name,
                            Some(port.name.as_str()),
                            "port_moved",
                            format!("port {name}.{} moved to {to}", port.name),
                        );
                    }
                }
            }
            Some(new_p) => product_changes(name, old_p, new_p, &moved_to, &mut b),
        }
    }
    for name in pn.keys() {
        if !po.contains_key(name) {
            b.push(
                ChangeClass::Compatible,
                name,
                None,
                "product_added",
                format!("product {name} was added"),
            );
        }
    }
    let mut changes = b.changes;
    changes.sort_by(|a, b| (a.class, &a.product, &a.port).cmp(&(b.class, &b.product, &b.port)));
    DiffReport {
        breaking: changes.iter().any(|c| c.class == ChangeClass::Breaking),
        changes,
    }
}

fn mesh_policies(old: &Mesh, new: &Mesh, b: &mut Builder) {
    let (o, n) = (&old.policies, &new.policies);
    if o.default_access != n.default_access {
        let widened = n.default_access == DefaultAccess::Allow;
        b.push(
            ChangeClass::Policy,
            "mesh",
            None,
            if widened {
                "access_widened"
            } else {
                "access_narrowed"
            },
            format!(
                "policies.default_access changed from {:?} to {:?}: products without `access` are now {}",
                o.default_access,
                n.default_access,
                if widened { "readable by every principal" } else { "readable by nobody" }
            )
            .to_lowercase(),
        );
    }
    let labels: BTreeSet<&String> = o
        .classifications
        .keys()
        .chain(n.classifications.keys())
        .collect();
    for l in labels {
        match (o.classifications.get(l), n.classifications.get(l)) {
            (Some(a), Some(c)) if a == c => {}
            (Some(a), Some(c)) => {
                let more_unmasked = c.unmask_groups.iter().any(|g| !a.unmask_groups.contains(g));
                let fewer_unmasked = a.unmask_groups.iter().any(|g| !c.unmask_groups.contains(g));
                let relaxed = more_unmasked && !fewer_unmasked;
                b.push(
                    ChangeClass::Policy,
                    "mesh",
                    None,
                    if relaxed {
                        "classification_relaxed"
                    } else {
                        "classification_changed"
                    },
                    format!(
                        "classification `{l}`: mask {} -> {}, unmask_groups [{}] -> [{}]",
                        a.mask.as_str(),
                        c.mask.as_str(),
                        a.unmask_groups.join(", "),
                        c.unmask_groups.join(", ")
                    ),
                );
            }
            (Some(_), None) => b.push(
                ChangeClass::Policy,
                "mesh",
                None,
                "classification_relaxed",
                format!("classification `{l}` no longer masks anything"),
            ),
            (None, Some(c)) => b.push(
                ChangeClass::Policy,
                "mesh",
                None,
                "classification_tightened",
                format!("classification `{l}` now masks with `{}`", c.mask.as_str()),
            ),
            (None, None) => {}
        }
    }
}

fn grantees(p: &Product) -> Option<BTreeSet<String>> {
    p.access
        .as_ref()
        .map(|a| a.read.iter().map(Grantee::to_string).collect())
}

fn product_changes(
    name: &str,
    old: &Product,
    new: &Product,
    moved_to: &BTreeMap<(String, String), String>,
    b: &mut Builder,
) {
    if old.owner != new.owner {
        b.push(
            ChangeClass::Compatible,
            name,
            None,
            "owner_changed",
            format!(
                "owner changed from {} to {}",
                old.owner.team, new.owner.team
            ),
        );
    }
    if old.description != new.description {
        b.push(
            ChangeClass::Compatible,
            name,
            None,
            "description_changed",
            "description changed".into(),
        );
    }
    if old.tags != new.tags {
        b.push(
            ChangeClass::Compatible,
            name,
            None,
            "tags_changed",
            format!(
                "tags [{}] -> [{}]",
                old.tags.join(", "),
                new.tags.join(", ")
            ),
        );
    }
    if old.status != new.status {
        b.push(
            ChangeClass::Compatible,
            name,
            None,
            "status_changed",
            format!("status {} -> {}", old.status.as_str(), new.status.as_str()),
        );
    }
    // Access: grants and row filters.
    match (grantees(old), grantees(new)) {
        (a, c) if a == c => {}
        (a, c) => {
            let a = a.unwrap_or_default();
            let c = c.unwrap_or_default();
            let removed: Vec<&String> = a.difference(&c).collect();
            let added: Vec<&String> = c.difference(&a).collect();
            if !removed.is_empty() {
                b.push(
                    ChangeClass::Policy,
                    name,
                    None,
                    "access_narrowed",
                    format!(
                        "read access removed for {}",
                        removed
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if !added.is_empty() {
                b.push(
                    ChangeClass::Policy,
                    name,
                    None,
                    "access_widened",
                    format!(
                        "read access granted to {}",
                        added
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
    let filters = |p: &Product| -> BTreeSet<String> {
        p.access
            .iter()
            .flat_map(|a| &a.row_filters)
            .map(|f| {
                format!(
                    "groups [{}] users [{}]: {}",
                    f.groups.join(", "),
                    f.users.join(", "),
                    f.where_sql
                )
            })
            .collect()
    };
    let (fo, fnew) = (filters(old), filters(new));
    for f in fo.difference(&fnew) {
        b.push(
            ChangeClass::Policy,
            name,
            None,
            "row_filter_removed",
            format!("row filter removed (access widened): {f}"),
        );
    }
    for f in fnew.difference(&fo) {
        b.push(
            ChangeClass::Policy,
            name,
            None,
            "row_filter_added",
            format!("row filter added (access narrowed): {f}"),
        );
    }
    for port in &old.ports {
        match new.ports.iter().find(|p| p.name == port.name) {
            None => match moved_to.get(&(name.to_string(), port.name.to_string())) {
                Some(to) => b.push(
                    ChangeClass::Breaking,
                    name,
                    Some(port.name.as_str()),
                    "port_moved",
                    format!("port {name}.{} moved to {to}", port.name),
                ),
                None => b.push(
                    ChangeClass::Breaking,
                    name,
                    Some(port.name.as_str()),
                    "port_removed",
                    format!("port {name}.{} was removed", port.name),
                ),
            },
            Some(np) => port_changes(name, port, np, b),
        }
    }
    for port in &new.ports {
        if !old.ports.iter().any(|p| p.name == port.name) {
            b.push(
                ChangeClass::Compatible,
                name,
                Some(port.name.as_str()),
                "port_added",
                format!("port {name}.{} was added", port.name),
            );
        }
    }
}

fn port_changes(product: &str, old: &Port, new: &Port, b: &mut Builder) {
    let port = old.name.as_str();
    let before = b.changes.len();
    let at = Some(port);
    if old.description != new.description {
        b.push(
            ChangeClass::Compatible,
            product,
            at,
            "description_changed",
            format!("port {port}: description changed"),
        );
    }
    if old.source != new.source || old.binding != new.binding {
        b.push(
            ChangeClass::Compatible,
            product,
            at,
            "binding_changed",
            format!(
                "port {port}: now reads {} from source `{}` (was {} from `{}`)",
                describe_binding(new),
                new.source,
                describe_binding(old),
                old.source
            ),
        );
    }
    match (&old.columns, &new.columns) {
        (Some(oc), Some(nc)) => columns(product, port, oc, nc, b),
        (Some(_), None) => b.push(
            ChangeClass::Breaking,
            product,
            at,
            "contract_removed",
            format!("port {port}: the contract was removed; columns and types now follow the source"),
        ),
        (None, Some(_)) => b.push(
            ChangeClass::Breaking,
            product,
            at,
            "contract_added",
            format!("port {port}: a contract now fixes columns and types; source columns outside it disappear"),
        ),
        (None, None) => {}
    }
    if old.primary_key != new.primary_key {
        b.push(
            ChangeClass::Compatible,
            product,
            at,
            "primary_key_changed",
            format!(
                "port {port}: primary key [{}] -> [{}]",
                old.primary_key.join(", "),
                new.primary_key.join(", ")
            ),
        );
    }
    let breaking = b.changes[before..]
        .iter()
        .any(|c| c.class == ChangeClass::Breaking);
    if breaking && new.version.unwrap_or(0) <= old.version.unwrap_or(0) {
        b.push(
            ChangeClass::Breaking,
            product,
            at,
            "version_not_bumped",
            format!(
                "port {port}: breaking change without a version bump (version {} -> {}); raise `version`",
                old.version.map_or("unset".into(), |v| v.to_string()),
                new.version.map_or("unset".into(), |v| v.to_string())
            ),
        );
    } else if old.version != new.version {
        b.push(
            ChangeClass::Compatible,
            product,
            at,
            "version_changed",
            format!(
                "port {port}: version {} -> {}",
                old.version.map_or("unset".into(), |v| v.to_string()),
                new.version.map_or("unset".into(), |v| v.to_string())
            ),
        );
    }
}

fn describe_binding(p: &Port) -> String {
    p.binding
        .table
        .as_ref()
        .map(|t| format!("table {t}"))
        .or_else(|| p.binding.query.as_ref().map(|_| "a query".to_string()))
        .or_else(|| p.binding.location.as_ref().map(|l| l.to_string()))
        .unwrap_or_else(|| "?".into())
}

fn columns(product: &str, port: &str, old: &[Column], new: &[Column], b: &mut Builder) {
    let at = Some(port);
    let removed: Vec<&Column> = old
        .iter()
        .filter(|c| !new.iter().any(|n| n.name == c.name))
        .collect();
    let added: Vec<&Column> = new
        .iter()
        .filter(|c| !old.iter().any(|o| o.name == c.name))
        .collect();
    for c in &removed {
        // A column replaced by a new one of the same type at the same position: a rename.
        let pos = old.iter().position(|x| x.name == c.name);
        let renamed = pos
            .and_then(|i| new.get(i))
            .filter(|n| added.iter().any(|a| a.name == n.name) && n.data_type == c.data_type);
        match renamed {
            Some(n) => b.push(
                ChangeClass::Breaking,
                product,
                at,
                "column_renamed",
                format!("port {port}: column `{}` renamed to `{}`", c.name, n.name),
            ),
            None => b.push(
                ChangeClass::Breaking,
                product,
                at,
                "column_removed",
                format!("port {port}: column `{}` was removed", c.name),
            ),
        }
    }
    for c in &added {
        let is_rename = old.iter().enumerate().any(|(i, o)| {
            removed.iter().any(|r| r.name == o.name)
                && new
                    .get(i)
                    .is_some_and(|n| n.name == c.name && n.data_type == o.data_type)
        });
        if !is_rename {
            b.push(
                ChangeClass::Compatible,
                product,
                at,
                "column_added",
                format!(
                    "port {port}: column `{}` ({}) was added",
                    c.name, c.data_type
                ),
            );
        }
    }
    for o in old {
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            continue;
        };
        if o.data_type != n.data_type {
            if is_widening(o.data_type, n.data_type) {
                b.push(
                    ChangeClass::Compatible,
                    product,
                    at,
                    "type_widened",
                    format!(
                        "port {port}: column `{}` widened from {} to {}",
                        o.name, o.data_type, n.data_type
                    ),
                );
            } else {
                b.push(
                    ChangeClass::Breaking,
                    product,
                    at,
                    "type_changed",
                    format!(
                        "port {port}: column `{}` changed from {} to {}",
                        o.name, o.data_type, n.data_type
                    ),
                );
            }
        }
        if !o.required && n.required {
            b.push(
                ChangeClass::Breaking,
                product,
                at,
                "column_required",
                format!(
                    "port {port}: column `{}` became required: rows with NULL now fail queries",
                    o.name
                ),
            );
        }
        if o.required && !n.required {
            b.push(
                ChangeClass::Breaking,
                product,
                at,
                "column_nullable",
                format!(
                    "port {port}: column `{}` is no longer required: consumers may now see NULL",
                    o.name
                ),
            );
        }
        if o.description != n.description {
            b.push(
                ChangeClass::Compatible,
                product,
                at,
                "description_changed",
                format!("port {port}: description of `{}` changed", o.name),
            );
        }
        match (&o.classification, &n.classification) {
            (a, c) if a == c => {}
            (Some(a), None) => b.push(
                ChangeClass::Policy,
                product,
                at,
                "classification_relaxed",
                format!(
                    "port {port}: column `{}` is no longer classified `{a}`",
                    o.name
                ),
            ),
            (None, Some(c)) => b.push(
                ChangeClass::Policy,
                product,
                at,
                "classification_tightened",
                format!("port {port}: column `{}` is now classified `{c}`", o.name),
            ),
            (Some(a), Some(c)) => b.push(
                ChangeClass::Policy,
                product,
                at,
                "classification_changed",
                format!(
                    "port {port}: column `{}` classification `{a}` -> `{c}`",
                    o.name
                ),
            ),
            (None, None) => {}
        }
    }
}

impl DiffReport {
    /// Markdown for a pull-request comment.
    pub fn markdown(&self) -> String {
        let count = |c| self.changes.iter().filter(|x| x.class == c).count();
        let mut out = String::from("## meshgate: data product changes\n\n");
        out.push_str(&format!(
            "{} **{} breaking**, {} compatible, {} policy change(s).\n",
            if self.breaking { "❌" } else { "✅" },
            count(ChangeClass::Breaking),
            count(ChangeClass::Compatible),
            count(ChangeClass::Policy)
        ));
        for (class, title) in [
            (ChangeClass::Breaking, "Breaking changes"),
            (ChangeClass::Compatible, "Compatible changes"),
            (ChangeClass::Policy, "Policy changes"),
        ] {
            let rows: Vec<&Change> = self.changes.iter().filter(|c| c.class == class).collect();
            if rows.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "\n### {title}\n\n| product | port | change | details |\n|---|---|---|---|\n"
            ));
            for c in rows {
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    c.product,
                    c.port
                        .as_deref()
                        .map_or(String::new(), |p| format!("`{p}`")),
                    c.kind,
                    c.message.replace('|', "\\|")
                ));
            }
        }
        if self.changes.is_empty() {
            out.push_str("\nNo changes to products, ports, contracts or policies.\n");
        }
        out
    }

    /// Plain text, one change per line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let class = match c.class {
                ChangeClass::Breaking => "BREAKING  ",
                ChangeClass::Compatible => "compatible",
                ChangeClass::Policy => "policy    ",
            };
            out.push_str(&format!("{class} {}: {}\n", c.product, c.message));
        }
        if self.changes.is_empty() {
            out.push_str("no changes\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    #[test]
    fn widenings() {
        assert!(is_widening(Int, BigInt));
        assert!(!is_widening(BigInt, Int));
        assert!(is_widening(Float, Double));
        assert!(is_widening(
            Decimal {
                precision: 10,
                scale: 2
            },
            Decimal {
                precision: 12,
                scale: 2
            }
        ));
        assert!(!is_widening(
            Decimal {
                precision: 12,
                scale: 2
            },
            Decimal {
                precision: 12,
                scale: 3
            }
        ));
        assert!(!is_widening(String, Int));
        assert!(!is_widening(Double, Float));
    }
}
