//! Authorization and policy rewriting: which products a principal may read, and the view of
//! each port it reads (classification masks in [`mask`], row filters behind a [`barrier`]).
//!
//! Listings ask a principal's `catalog::view::CatalogView`, which asks [`PolicySet`]; a port
//! with masks or row filters for the principal resolves to a view
//!
//! ```text
//! Projection(masks) <- PolicyBarrier <- Filter(row filters, OR-ed) <- scan of the port
//! ```
//!
//! DataFusion inlines views where they are referenced, so every query shape (CTEs,
//! subqueries, self-joins, UNION, windows, prepared statements) reads the port through it.
//! The barrier is an extension node that no predicate crosses, logically or physically: a
//! user predicate that could fail (`1/(x-50000) = 1`) only ever sees rows the filter let
//! through. Below the barrier, federation pushes the filtered scan to SQL sources; the masks
//! (keyed hashes computed here) stay in the gateway.

pub mod barrier;
pub mod mask;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::Result as DFResult;
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{visit_expressions, Expr as SqlExpr};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use meshgate_config::doc::{DefaultAccess, MaskKind};
use meshgate_config::{Grantee, Mesh, Port, Product, RowFilter};
use sha2::Sha256;

pub use barrier::{PolicyBarrier, PolicyBarrierExec, PolicyBarrierPlanner};

use super::Principal;
use crate::error::GatewayError;
use crate::port::PortRef;

/// The policies of one mesh.
pub struct PolicySet {
    mesh: Arc<Mesh>,
    hash_key: [u8; 32],
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("policies", &self.mesh.policies)
            .finish_non_exhaustive()
    }
}

/// The identifiers a row filter names (its columns), or why it does not parse.
pub fn filter_columns(sql: &str) -> Result<BTreeSet<String>, String> {
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("`{sql}` is not a SQL expression: {e}"))?;
    let mut out = BTreeSet::new();
    let _ = visit_expressions(&expr, |e| {
        match e {
            SqlExpr::Identifier(i) => {
                out.insert(i.value.to_lowercase());
            }
            SqlExpr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    out.insert(last.value.to_lowercase());
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(out)
}

/// Problems with the policies of `mesh` that can be found without opening ports: row filters
/// that do not parse or fit no port, grants of unknown principals are fine (JWT subjects).
pub fn check_policies(mesh: &Mesh) -> Vec<(meshgate_config::Origin, String)> {
    let mut out = Vec::new();
    for d in mesh.domains.values() {
        for p in d.products.values() {
            let Some(access) = &p.access else { continue };
            for f in &access.row_filters {
                let cols = match filter_columns(&f.where_sql) {
                    Ok(c) => c,
                    Err(e) => {
                        out.push((f.origin.clone(), format!("access.row_filters: {e}")));
                        continue;
                    }
                };
                if f.ports.is_some() {
                    continue;
                }
                let contracts: Vec<&Vec<meshgate_config::Column>> =
                    p.ports.iter().filter_map(|t| t.columns.as_ref()).collect();
                if contracts.len() == p.ports.len()
                    && !contracts
                        .iter()
                        .any(|c| cols.iter().all(|n| c.iter().any(|x| &x.name == n)))
                {
                    out.push((
                        f.origin.clone(),
                        format!(
                            "access.row_filters: no port of {}.{} has every column `{}` names ({}); \
                             fix the names or list the `ports`",
                            p.domain,
                            p.name,
                            f.where_sql,
                            cols.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
    }
    out
}

impl PolicySet {
    /// Policies of `mesh`; `hash_key` keys the `hash` mask.
    pub fn new(mesh: Arc<Mesh>) -> Self {
        let hash_key = match &mesh.policies.hash_key {
            Some(k) => {
                use sha2::Digest;
                let mut h = Sha256::new();
                h.update(b"meshgate mask key v1");
                h.update(k.as_bytes());
                h.finalize().into()
            }
            None => rand::random(),
        };
        Self { mesh, hash_key }
    }

    /// The mesh.
    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    /// Whether `p` may read `product`.
    pub fn can_read(&self, p: &Principal, product: &Product) -> bool {
        match &product.access {
            None => self.mesh.policies.default_access == DefaultAccess::Allow,
            Some(a) => a.read.iter().any(|g| match g {
                Grantee::Everyone => true,
                Grantee::Group(g) => p.in_group(g),
                Grantee::User(u) => &p.name == u,
            }),
        }
    }

    /// Whether `p` may read product `domain.product`.
    pub fn can_read_names(&self, p: &Principal, domain: &str, product: &str) -> bool {
        self.product(domain, product)
            .is_some_and(|pr| self.can_read(p, pr))
    }

    fn product(&self, domain: &str, product: &str) -> Option<&Product> {
        self.mesh.domains.get(domain)?.products.get(product)
    }

    /// The error for reading a product one may not: names it and whom to ask.
    pub fn denied(&self, domain: &str, product: &str) -> GatewayError {
        let owner = self
            .product(domain, product)
            .map(|p| p.owner.contact())
            .unwrap_or_else(|| "its owner".into());
        GatewayError::PermissionDenied(format!(
            "you may not read product {domain}.{product}; ask its owner, {owner}, for access"
        ))
    }

    /// Masks for `p` on `port`: column name and mask.
    pub fn masks(&self, p: &Principal, port: &Port) -> Vec<(String, MaskKind)> {
        let Some(cols) = &port.columns else {
            return vec![];
        };
        cols.iter()
            .filter_map(|c| {
                let label = c.classification.as_ref()?;
                let policy = self.mesh.policies.classifications.get(label)?;
                (!p.in_any(&policy.unmask_groups)).then(|| (c.name.clone(), policy.mask))
            })
            .collect()
    }

    /// Row filters of `product` for `p` that apply to `port` (whose columns are `columns`).
    fn row_filters<'a>(
        &self,
        p: &Principal,
        product: &'a Product,
        port: &str,
        columns: &HashSet<String>,
    ) -> Result<Vec<&'a RowFilter>, GatewayError> {
        let Some(access) = &product.access else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for f in &access.row_filters {
            if !(p.in_any(&f.groups) || f.users.iter().any(|u| u == &p.name)) {
                continue;
            }
            let applies = match &f.ports {
                Some(ports) => ports.iter().any(|x| x == port),
                None => filter_columns(&f.where_sql)
                    .map_err(|e| policy_error(product, port, &e))?
                    .iter()
                    .all(|c| columns.contains(c)),
            };
            if applies {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// What `p` reads when it references port `key`: `base` itself, or a view with masks and
    /// row filters.
    pub fn port_view(
        &self,
        p: &Principal,
        key: &PortRef,
        base: Arc<dyn TableProvider>,
        state: &SessionState,
    ) -> Result<Arc<dyn TableProvider>, GatewayError> {
        let Some(product) = self.product(&key.domain, &key.product) else {
            return Err(GatewayError::internal("port of an unknown product"));
        };
        let Some(port) = product.ports.iter().find(|t| t.name.as_str() == key.port) else {
            return Err(GatewayError::internal("unknown port"));
        };
        let schema = base.schema();
        let columns: HashSet<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let filters = self.row_filters(p, product, &key.port, &columns)?;
        let masks = self.masks(p, port);
        if filters.is_empty() && masks.is_empty() {
            return Ok(base);
        }
        let name = key.table_reference();
        let build = || -> DFResult<LogicalPlan> {
            let mut b = LogicalPlanBuilder::scan(name.clone(), provider_as_source(base), None)?;
            if !filters.is_empty() {
                let df_schema = b.schema().as_ref().clone();
                let mut predicate: Option<Expr> = None;
                for f in &filters {
                    let e = state.create_logical_expr(&f.where_sql, &df_schema)?;
                    predicate = Some(match predicate {
                        None => e,
                        Some(prev) => prev.or(e),
                    });
                }
                if let Some(pred) = predicate {
                    b = b.filter(pred)?;
                }
                let barrier = PolicyBarrier::new(b.build()?);
                b = LogicalPlanBuilder::from(LogicalPlan::Extension(Extension {
                    node: Arc::new(barrier),
                }));
            }
            if !masks.is_empty() {
                let by_name: BTreeMap<&str, MaskKind> =
                    masks.iter().map(|(c, m)| (c.as_str(), *m)).collect();
                let exprs = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let c = Expr::Column(datafusion::common::Column::new(
                            Some(name.clone()),
                            f.name(),
                        ));
                        match by_name.get(f.name().as_str()) {
                            None => Ok(c),
                            Some(m) => mask::mask_expr(*m, c, f.data_type(), &self.hash_key)
                                .map(|e| e.alias(f.name())),
                        }
                    })
                    .collect::<DFResult<Vec<_>>>()?;
                b = b.project(exprs)?;
            }
            b.build()
        };
        let plan = build().map_err(|e| {
            tracing::error!(port = %name, error = %e, "a policy of this port cannot be applied; the port is refused");
            policy_error(product, &key.port, "a policy of this port cannot be applied")
        })?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

fn policy_error(product: &Product, port: &str, what: &str) -> GatewayError {
    GatewayError::PermissionDenied(format!(
        "port {}.{}.{port} is refused: {what}; its owner, {}, must fix its access policy",
        product.domain, product.name, product.owner.team
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_columns_are_found() {
        let c = filter_columns("c_nationkey IN (6, 7) AND lower(t.c_name) <> 'x'").expect("ok");
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            vec!["c_name".to_string(), "c_nationkey".to_string()]
        );
        assert!(filter_columns("c_nationkey IN (").is_err());
    }
}
