//! The one list of connector kinds this build serves (feature-gated), and the static
//! validation that runs every connector's checks over a mesh.

use std::sync::Arc;

use meshgate_config::{load_mesh_lenient, ConfigError, ConfigErrors, Mesh};
use meshgate_connector::{Registry, SourceContext};

use crate::catalog::port_request;

/// The registry of every connector compiled in.
pub fn default_registry() -> Registry {
    let mut r = Registry::default();
    #[cfg(feature = "files")]
    r.register(Arc::new(meshgate_connector_files::FilesFactory));
    #[cfg(feature = "sqlite")]
    r.register(Arc::new(meshgate_connector_sqlite::factory()));
    #[cfg(feature = "postgres")]
    r.register(Arc::new(meshgate_connector_postgres::factory()));
    #[cfg(feature = "mysql")]
    r.register(Arc::new(meshgate_connector_mysql::factory()));
    #[cfg(feature = "flightsql")]
    r.register(Arc::new(meshgate_connector_flightsql::factory()));
    r
}

/// Loads `dir` and runs every connector's static checks; returns every problem at once.
pub fn load_and_check(dir: &std::path::Path, registry: &Registry) -> Result<Mesh, ConfigErrors> {
    let (mesh, mut errors) = load_mesh_lenient(dir);
    for (name, source) in &mesh.sources {
        let Some(factory) = registry.get(&source.kind) else {
            errors.push(ConfigError::new(
                source.origin.clone(),
                format!(
                    "source `{name}` has unknown kind `{}`; this build supports: {}",
                    source.kind,
                    registry.kinds().join(", ")
                ),
            ));
            continue;
        };
        let ports: Vec<_> = mesh
            .ports()
            .filter(|(_, _, p)| p.source == *name)
            .map(|(_, prod, p)| (p.origin.clone(), port_request(prod, p)))
            .collect();
        let requests: Vec<_> = ports.iter().map(|(_, r)| r.clone()).collect();
        let ctx = SourceContext {
            name: name.to_string(),
            base_dir: source.base_dir.clone(),
            pushdown: source.pushdown,
        };
        for (idx, msg) in factory.check(&ctx, &source.options, &requests) {
            match idx {
                None => errors.push(ConfigError::new(
                    source.options_origin.clone(),
                    format!("source `{name}`: {msg}"),
                )),
                Some(i) => errors.push(ConfigError::new(
                    ports[i].0.clone(),
                    format!("port {}: {msg}", ports[i].1.display_name),
                )),
            }
        }
    }
    for (origin, msg) in crate::security::policy::check_policies(&mesh) {
        errors.push(ConfigError::new(origin, msg));
    }
    for problem in crate::security::authn::check_auth(&mesh.auth) {
        errors.push(ConfigError::new(
            meshgate_config::Origin::file(mesh.root.join(meshgate_config::MESH_FILE)),
            problem.to_string(),
        ));
    }
    if errors.is_empty() {
        Ok(mesh)
    } else {
        errors.sort_by(|a, b| {
            (&a.origin.file, a.origin.line, a.origin.column).cmp(&(
                &b.origin.file,
                b.origin.line,
                b.origin.column,
            ))
        });
        Err(ConfigErrors(errors))
    }
}
