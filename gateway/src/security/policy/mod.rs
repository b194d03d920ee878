//! Authorization and policy rewriting: which products a principal may read, and the view of
//! each port it reads (classification masks, row filters).
//!
//! Each request plans against a [`PrincipalCatalogList`]: listings show only readable
//! products, and a port with masks or row filters for the principal resolves to a view
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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Int16Array, Int32Array, Int64Array, Int8Array,
    StringArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{DFSchemaRef, Result as DFResult, ScalarValue, TableReference};
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, Extension, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::sql::sqlparser::ast::{visit_expressions, Expr as SqlExpr};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use hmac::{Hmac, Mac};
use meshgate_config::doc::{DefaultAccess, MaskKind};
use meshgate_config::{Grantee, Mesh, Port, Product, RowFilter};
use sha2::Sha256;

use super::Principal;
use crate::catalog::MeshCatalog;
use crate::error::GatewayError;

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
        key: &(String, String, String),
        base: Arc<dyn TableProvider>,
        state: &SessionState,
    ) -> Result<Arc<dyn TableProvider>, GatewayError> {
        let Some(product) = self.product(&key.0, &key.1) else {
            return Err(GatewayError::internal("port of an unknown product"));
        };
        let Some(port) = product.ports.iter().find(|t| t.name.as_str() == key.2) else {
            return Err(GatewayError::internal("unknown port"));
        };
        let schema = base.schema();
        let columns: HashSet<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let filters = self.row_filters(p, product, &key.2, &columns)?;
        let masks = self.masks(p, port);
        if filters.is_empty() && masks.is_empty() {
            return Ok(base);
        }
        let name = TableReference::full(key.0.as_str(), key.1.as_str(), key.2.as_str());
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
                let barrier = PolicyBarrier { input: b.build()? };
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
                            Some(m) => mask_expr(*m, c, f.data_type(), &self.hash_key)
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
            policy_error(product, &key.2, "a policy of this port cannot be applied")
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

/// The masking expression for a column of type `t`.
fn mask_expr(m: MaskKind, c: Expr, t: &DataType, key: &[u8; 32]) -> DFResult<Expr> {
    let text = matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let int = t.is_integer();
    Ok(match m {
        MaskKind::Redact => Expr::Literal(ScalarValue::try_from(t)?, None),
        MaskKind::Hash if text || int => ScalarUDF::new_from_impl(MaskUdf {
            kind: MaskFn::Hash,
            key: *key,
            signature: Signature::any(1, Volatility::Volatile),
        })
        .call(vec![c]),
        MaskKind::Partial if text => ScalarUDF::new_from_impl(MaskUdf {
            kind: MaskFn::Partial,
            key: *key,
            signature: Signature::any(1, Volatility::Volatile),
        })
        .call(vec![c]),
        MaskKind::Hash | MaskKind::Partial => Expr::Literal(ScalarValue::try_from(t)?, None),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MaskFn {
    Hash,
    Partial,
}

/// `meshgate_mask_hash` / `meshgate_mask_partial`. Volatile on purpose: predicates on a
/// masked column are then never pushed below the mask (into a scan or a source).
#[derive(PartialEq, Eq, Hash)]
struct MaskUdf {
    kind: MaskFn,
    key: [u8; 32],
    signature: Signature,
}

impl fmt::Debug for MaskUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskUdf")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl MaskUdf {
    fn digest(&self, bytes: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn partial(s: &str) -> String {
    let n = s.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    let tail: String = s.chars().skip(n - 4).collect();
    format!("{}{tail}", "*".repeat(n - 4))
}

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        match self.kind {
            MaskFn::Hash => "meshgate_mask_hash",
            MaskFn::Partial => "meshgate_mask_partial",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        let t = arg_types.first().cloned().unwrap_or(DataType::Null);
        Ok(if t.is_integer() { t } else { DataType::Utf8 })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let n = args.number_rows;
        let Some(arg) = args.args.into_iter().next() else {
            return Err(DataFusionError::Internal("mask without argument".into()));
        };
        let arr = arg.into_array(n)?;
        let t = arr.data_type().clone();
        let out: ArrayRef = if t.is_integer() {
            let as64 = cast(&arr, &DataType::Int64)?;
            let v = as64.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let hashed: Int64Array = v
                .iter()
                .map(|x| {
                    x.map(|x| {
                        let d = self.digest(&x.to_le_bytes());
                        i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
                    })
                })
                .collect();
            // Same width as the input: the low bits of the 64-bit hash.
            match t {
                DataType::Int64 => Arc::new(hashed),
                DataType::Int32 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as i32))
                        .collect::<Int32Array>(),
                ),
                DataType::Int16 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as i16))
                        .collect::<Int16Array>(),
                ),
                DataType::Int8 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as i8))
                        .collect::<Int8Array>(),
                ),
                DataType::UInt64 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u64))
                        .collect::<UInt64Array>(),
                ),
                DataType::UInt32 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u32))
                        .collect::<UInt32Array>(),
                ),
                DataType::UInt16 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u16))
                        .collect::<UInt16Array>(),
                ),
                DataType::UInt8 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u8))
                        .collect::<UInt8Array>(),
                ),
                _ => new_null_array(&t, n),
            }
        } else {
            let s = cast(&arr, &DataType::Utf8)?;
            let s = s.as_string::<i32>();
            let out: StringArray = match self.kind {
                MaskFn::Hash => s
                    .iter()
                    .map(|x| x.map(|x| hex(&self.digest(x.as_bytes())[..16])))
                    .collect(),
                MaskFn::Partial => s.iter().map(|x| x.map(partial)).collect(),
            };
            Arc::new(out)
        };
        debug_assert_eq!(out.len(), n);
        Ok(ColumnarValue::Array(out))
    }
}

/// A node no predicate is pushed through: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct PolicyBarrier {
    input: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for PolicyBarrier {
    fn name(&self) -> &str {
        "PolicyBarrier"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PolicyBarrier")
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DFResult<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(Self { input }),
            _ => Err(DataFusionError::Internal(
                "PolicyBarrier takes one input".into(),
            )),
        }
    }

    // Columns pass through unchanged, so projections may be pushed below it; predicates
    // may not (the default of `prevent_predicate_push_down_columns`).
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }
}

/// Physical form of [`PolicyBarrier`]: passes batches through, accepts no pushed filter.
#[derive(Debug)]
pub struct PolicyBarrierExec {
    input: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for PolicyBarrierExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PolicyBarrierExec")
    }
}

impl ExecutionPlan for PolicyBarrierExec {
    fn name(&self) -> &str {
        "PolicyBarrierExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(Self { input })),
            _ => Err(DataFusionError::Internal(
                "PolicyBarrierExec takes one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Plans [`PolicyBarrier`] nodes.
#[derive(Debug, Default)]
pub struct PolicyBarrierPlanner;

#[async_trait]
impl datafusion::physical_planner::ExtensionPlanner for PolicyBarrierPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn datafusion::physical_planner::PhysicalPlanner,
        node: &dyn datafusion::logical_expr::UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
        if node.as_any().downcast_ref::<PolicyBarrier>().is_none() {
            return Ok(None);
        }
        match physical_inputs {
            [input] => Ok(Some(Arc::new(PolicyBarrierExec {
                input: Arc::clone(input),
            }))),
            _ => Err(DataFusionError::Internal(
                "PolicyBarrier takes one input".into(),
            )),
        }
    }
}

/// The catalog as one principal sees it.
#[derive(Debug)]
pub struct PrincipalCatalogList {
    usage: Option<Arc<crate::usage::Usage>>,
    catalog: Arc<MeshCatalog>,
    policy: Arc<PolicySet>,
    principal: Arc<Principal>,
    state: SessionState,
}

impl PrincipalCatalogList {
    /// `principal`'s view of `catalog`; `state` plans row filter expressions.
    pub fn new(
        catalog: Arc<MeshCatalog>,
        policy: Arc<PolicySet>,
        principal: Arc<Principal>,
        state: SessionState,
    ) -> Self {
        Self {
            usage: None,
            catalog,
            policy,
            principal,
            state,
        }
    }

    /// Serves `usage` in `mesh.usage`.
    pub fn with_usage(mut self, usage: Option<Arc<crate::usage::Usage>>) -> Self {
        self.usage = usage;
        self
    }

    fn readable_products(&self, domain: &str) -> Vec<String> {
        self.policy
            .mesh
            .domains
            .get(domain)
            .map(|d| {
                d.products
                    .values()
                    .filter(|p| self.policy.can_read(&self.principal, p))
                    .map(|p| p.name.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl CatalogProviderList for PrincipalCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .policy
            .mesh
            .domains
            .keys()
            .filter(|d| !self.readable_products(d.as_str()).is_empty())
            .map(|d| d.to_string())
            .collect();
        names.push(crate::catalog::system::SYSTEM_CATALOG.to_string());
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == crate::catalog::system::SYSTEM_CATALOG {
            return Some(Arc::new(crate::catalog::system::SystemCatalog::new(
                Arc::clone(&self.catalog),
                Arc::clone(&self.policy),
                Arc::clone(&self.principal),
                self.usage.clone(),
            )));
        }
        let products = self.readable_products(name);
        if products.is_empty() {
            return None;
        }
        Some(Arc::new(PrincipalDomain {
            domain: name.to_string(),
            products,
            list: Arc::new(Self {
                usage: self.usage.clone(),
                catalog: Arc::clone(&self.catalog),
                policy: Arc::clone(&self.policy),
                principal: Arc::clone(&self.principal),
                state: self.state.clone(),
            }),
        }))
    }
}

#[derive(Debug)]
struct PrincipalDomain {
    domain: String,
    products: Vec<String>,
    list: Arc<PrincipalCatalogList>,
}

impl CatalogProvider for PrincipalDomain {
    fn schema_names(&self) -> Vec<String> {
        self.products.clone()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.products.iter().any(|p| p == name).then(|| {
            Arc::new(PrincipalProduct {
                domain: self.domain.clone(),
                product: name.to_string(),
                list: Arc::clone(&self.list),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct PrincipalProduct {
    domain: String,
    product: String,
    list: Arc<PrincipalCatalogList>,
}

impl PrincipalProduct {
    fn key(&self, name: &str) -> (String, String, String) {
        (self.domain.clone(), self.product.clone(), name.to_string())
    }
}

#[async_trait]
impl SchemaProvider for PrincipalProduct {
    fn table_names(&self) -> Vec<String> {
        self.list
            .catalog
            .served()
            .keys()
            .filter(|(d, p, _)| d == &self.domain && p == &self.product)
            .map(|(_, _, t)| t.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let key = self.key(name);
        let Some(served) = self.list.catalog.served_port(&key) else {
            return Ok(None);
        };
        let view = self
            .list
            .policy
            .port_view(
                &self.list.principal,
                &key,
                served.provider,
                &self.list.state,
            )
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(view))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.list.catalog.served_port(&self.key(name)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_keeps_last_four() {
        assert_eq!(partial("555-123-4567"), "********4567");
        assert_eq!(partial("abcd"), "****");
        assert_eq!(partial(""), "");
    }

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
