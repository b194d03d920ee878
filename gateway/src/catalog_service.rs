//! `meshgate.v1.Catalog`: discovery over gRPC on the Flight SQL port. Same authentication as
//! Flight SQL, and only products the caller may read.

use std::collections::BTreeSet;
use std::sync::Arc;

use meshgate_config::Product;
use meshgate_proto::v1::catalog_server::Catalog;
use meshgate_proto::v1::{
    Column, Domain, GetProductRequest, ListDomainsRequest, ListDomainsResponse,
    ListProductsRequest, ListProductsResponse, Port, Product as ProductMsg, ProductSummary,
    UsageSummary,
};
use tonic::{Request, Response, Status};

use crate::catalog::system;
use crate::catalog::view::CatalogView;
use crate::port::{PortRef, ProductRef};
use crate::request::{CallMeta, CatalogCall, Rpc};
use crate::state::GatewayState;

/// The Catalog service.
#[derive(Debug, Clone)]
pub struct CatalogService {
    state: Arc<GatewayState>,
}

impl CatalogService {
    /// A Catalog service answering from `state`'s engine, authenticator and usage.
    pub fn new(state: Arc<GatewayState>) -> Self {
        Self { state }
    }

    /// Authenticates and records a call; the caller's view of the mesh.
    async fn view<T>(
        &self,
        request: &Request<T>,
        call: CatalogCall,
    ) -> Result<CatalogView, Status> {
        let call = self
            .state
            .authenticate_and_record(Rpc::Catalog(call), CallMeta::of(request))
            .await?;
        Ok(self.state.view(&call))
    }
}

fn summary(view: &CatalogView, p: &Product) -> ProductSummary {
    ProductSummary {
        domain: p.domain.to_string(),
        name: p.name.to_string(),
        description: p.description.clone().unwrap_or_default(),
        owner: p.owner.team.clone(),
        owner_email: p.owner.email.clone().unwrap_or_default(),
        tags: p.tags.clone(),
        status: p.status.as_str().to_string(),
        health: system::product_health(view.catalog(), p).to_string(),
        ports: p.ports.len() as u32,
    }
}

fn matches_text(p: &Product, text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let t = text.to_lowercase();
    let mut hay = vec![
        p.domain.to_string(),
        p.name.to_string(),
        p.description.clone().unwrap_or_default(),
        p.owner.team.clone(),
    ];
    hay.extend(p.tags.iter().cloned());
    for port in &p.ports {
        hay.push(port.name.to_string());
        hay.push(port.description.clone().unwrap_or_default());
        for c in port.columns.iter().flatten() {
            hay.push(c.name.clone());
            hay.push(c.description.clone().unwrap_or_default());
        }
    }
    hay.iter().any(|h| h.to_lowercase().contains(&t))
}

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn list_domains(
        &self,
        request: Request<ListDomainsRequest>,
    ) -> Result<Response<ListDomainsResponse>, Status> {
        let view = self.view(&request, CatalogCall::ListDomains).await?;
        let mut domains: Vec<Domain> = Vec::new();
        for p in view.products() {
            match domains.iter_mut().find(|d| d.name == p.domain.as_str()) {
                Some(d) => {
                    d.products += 1;
                    if !d.owners.contains(&p.owner.team) {
                        d.owners.push(p.owner.team.clone());
                    }
                }
                None => domains.push(Domain {
                    name: p.domain.to_string(),
                    products: 1,
                    owners: vec![p.owner.team.clone()],
                }),
            }
        }
        Ok(Response::new(ListDomainsResponse { domains }))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let view = self.view(&request, CatalogCall::ListProducts).await?;
        let q = request.into_inner();
        let products = view
            .products()
            .filter(|p| q.domain.is_empty() || p.domain.as_str() == q.domain)
            .filter(|p| q.tag.is_empty() || p.tags.iter().any(|t| t == &q.tag))
            .filter(|p| q.owner.is_empty() || p.owner.team == q.owner)
            .filter(|p| matches_text(p, &q.text))
            .map(|p| summary(&view, p))
            .collect();
        Ok(Response::new(ListProductsResponse { products }))
    }

    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<ProductMsg>, Status> {
        let view = self.view(&request, CatalogCall::GetProduct).await?;
        let q = request.into_inner();
        let wanted = ProductRef {
            domain: q.domain,
            product: q.product,
        };
        let p = view.product(&wanted)?;
        let kind_of = |source: &str| {
            view.catalog()
                .mesh
                .sources
                .get(source)
                .map(|s| s.kind.clone())
                .unwrap_or_default()
        };
        let ports = p
            .ports
            .iter()
            .map(|port| {
                let (status, problems) = system::port_status(view.catalog(), &PortRef::of(p, port));
                let masks = view.masks(port);
                let location = system::location_summary(port).unwrap_or_default();
                Port {
                    name: port.name.to_string(),
                    description: port.description.clone().unwrap_or_default(),
                    source_kind: kind_of(port.source.as_str()),
                    location,
                    contract_version: port.version.unwrap_or(0),
                    freshness: port.freshness.clone().unwrap_or_default(),
                    status: status.to_string(),
                    problems,
                    columns: port
                        .columns
                        .iter()
                        .flatten()
                        .map(|c| Column {
                            name: c.name.clone(),
                            r#type: c.data_type.to_string(),
                            required: c.required,
                            description: c.description.clone().unwrap_or_default(),
                            classification: c.classification.clone().unwrap_or_default(),
                            masked: masks.iter().any(|(n, _)| n == &c.name),
                        })
                        .collect(),
                }
            })
            .collect();
        let rows = self
            .state
            .usage()
            .by_product(|consumer, product| *product == wanted && view.sees_usage(consumer));
        let consumers: BTreeSet<&String> = rows.iter().map(|((_, c, _), _)| c).collect();
        let usage = rows.iter().fold(
            UsageSummary {
                consumers: consumers.len() as u64,
                ..UsageSummary::default()
            },
            |mut u, (_, a)| {
                u.queries += a.queries;
                u.rows += a.rows;
                u.bytes += a.bytes;
                u
            },
        );
        Ok(Response::new(ProductMsg {
            summary: Some(summary(&view, p)),
            ports,
            usage: Some(usage),
        }))
    }
}

/// The Catalog service wrapped for tonic.
pub fn catalog_server(
    state: Arc<GatewayState>,
) -> meshgate_proto::v1::catalog_server::CatalogServer<CatalogService> {
    meshgate_proto::v1::catalog_server::CatalogServer::new(CatalogService::new(state))
}
