//! `meshgate.v1.Catalog`: discovery over gRPC on the Flight SQL port. Same authentication as
//! Flight SQL, and only products the caller may read.

use std::collections::BTreeSet;

use meshgate_config::Product;
use meshgate_proto::v1::catalog_server::Catalog;
use meshgate_proto::v1::{
    Column, Domain, GetProductRequest, ListDomainsRequest, ListDomainsResponse,
    ListProductsRequest, ListProductsResponse, Port, Product as ProductMsg, ProductSummary,
    UsageSummary,
};
use tonic::{Request, Response, Status};

use crate::catalog::system;
use crate::error::GatewayError;
use crate::flight::MeshFlightSqlService;
use crate::query::QueryEngine;
use crate::security::Principal;

/// The Catalog service.
#[derive(Debug, Clone)]
pub struct CatalogService {
    flight: MeshFlightSqlService,
}

impl CatalogService {
    /// A Catalog service answering from `flight`'s engine, authenticator and usage.
    pub fn new(flight: MeshFlightSqlService) -> Self {
        Self { flight }
    }
}

fn summary(engine: &QueryEngine, p: &Product) -> ProductSummary {
    ProductSummary {
        domain: p.domain.to_string(),
        name: p.name.to_string(),
        description: p.description.clone().unwrap_or_default(),
        owner: p.owner.team.clone(),
        owner_email: p.owner.email.clone().unwrap_or_default(),
        tags: p.tags.clone(),
        status: p.status.as_str().to_string(),
        health: system::product_health(engine.catalog(), p).to_string(),
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

fn readable<'a>(engine: &'a QueryEngine, who: &Principal) -> Vec<&'a Product> {
    engine
        .catalog()
        .mesh
        .domains
        .values()
        .flat_map(|d| d.products.values())
        .filter(|p| engine.policy().can_read(who, p))
        .collect()
}

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn list_domains(
        &self,
        request: Request<ListDomainsRequest>,
    ) -> Result<Response<ListDomainsResponse>, Status> {
        let who = self.flight.authenticate(&request, "Catalog/ListDomains")?;
        let engine = self.flight.engine();
        let mut domains: Vec<Domain> = Vec::new();
        for p in readable(&engine, &who) {
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
        let who = self.flight.authenticate(&request, "Catalog/ListProducts")?;
        let q = request.into_inner();
        let engine = self.flight.engine();
        let products = readable(&engine, &who)
            .into_iter()
            .filter(|p| q.domain.is_empty() || p.domain.as_str() == q.domain)
            .filter(|p| q.tag.is_empty() || p.tags.iter().any(|t| t == &q.tag))
            .filter(|p| q.owner.is_empty() || p.owner.team == q.owner)
            .filter(|p| matches_text(p, &q.text))
            .map(|p| summary(&engine, p))
            .collect();
        Ok(Response::new(ListProductsResponse { products }))
    }

    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<ProductMsg>, Status> {
        let who = self.flight.authenticate(&request, "Catalog/GetProduct")?;
        let q = request.into_inner();
        let engine = self.flight.engine();
        let Some(p) = engine
            .catalog()
            .mesh
            .domains
            .get(q.domain.as_str())
            .and_then(|d| d.products.get(q.product.as_str()))
        else {
            return Err(GatewayError::NotFound(format!(
                "product {}.{} does not exist",
                q.domain, q.product
            ))
            .into());
        };
        if !engine.policy().can_read(&who, p) {
            return Err(engine.policy().denied(&q.domain, &q.product).into());
        }
        let kind_of = |source: &str| {
            engine
                .catalog()
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
                let key = (
                    p.domain.to_string(),
                    p.name.to_string(),
                    port.name.to_string(),
                );
                let (status, problems) = system::port_status(engine.catalog(), &key);
                let masks = engine.policy().masks(&who, port);
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
        let product_name = format!("{}.{}", p.domain, p.name);
        let usage = self.flight.usage();
        let rows = usage.by_product(|consumer, product| {
            product == product_name && system::sees_usage(&who, consumer)
        });
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
            summary: Some(summary(&engine, p)),
            ports,
            usage: Some(usage),
        }))
    }
}

/// The Catalog service wrapped for tonic.
pub fn catalog_server(
    flight: MeshFlightSqlService,
) -> meshgate_proto::v1::catalog_server::CatalogServer<CatalogService> {
    meshgate_proto::v1::catalog_server::CatalogServer::new(CatalogService::new(flight))
}
