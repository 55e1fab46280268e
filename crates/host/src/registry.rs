//! Moves what the home keeps about boxes and domains into the archive: the box registry
//! (certificates, keys, highest state versions), domains and sub-domains with their bundles,
//! and the domain-process records the KMC sends Oak with MI1. Idempotent: what the archive
//! already holds is left as it is.

use postkey_archive::{
    NewBox, NewBundle, NewDomain, NewDomainProcess, NewSubdomain, SignedRecord, Store,
};
use postkey_wire::Sender;

use crate::{Home, HostError, clock};

/// Registers every box, domain, bundle and process of `home` in `store` that it lacks.
pub async fn register_in_archive(home: &Home, store: &impl Store) -> Result<(), HostError> {
    let now = clock::now();
    let anchors = home.anchors()?;
    let admin = Sender::Box(postkey_wire::BoxId::FIRST_MANUFACTURING);
    for bundle in home.domains()? {
        let b = bundle.claimed_body();
        if store.domain(&b.domain).await?.is_none() {
            store
                .create_domain(&NewDomain { id: b.domain.clone(), time: now, actor: admin.clone() })
                .await?;
            for s in &b.subdomains {
                store
                    .add_subdomain(&NewSubdomain { id: s.clone(), time: now, actor: admin.clone() })
                    .await?;
            }
        }
        if store.latest_bundle(&b.domain).await?.is_none() {
            let bytes = home.bundle(&b.domain)?;
            let record =
                SignedRecord { record_type: postkey_wire::RecordType::DOMAIN_BUNDLE, bytes };
            let new = NewBundle {
                domain: b.domain.clone(),
                version: 1,
                created_by: postkey_wire::BoxId::FIRST_MANUFACTURING,
                bundle: record,
                time: now,
            };
            store.store_bundle(&new).await?;
        }
    }
    for id in home.store().list().map_err(|e| HostError::boxed("host", e))? {
        let cert =
            home.store().read_certificate(id, &anchors).map_err(|e| HostError::boxed(id, e))?;
        if store.box_record(id).await?.is_none() {
            let version = home.recorded_version(id)?.unwrap_or(postkey_wire::StateVersion(0));
            let new = NewBox {
                id,
                certificate: SignedRecord::from_verified(&cert),
                identity_key: cert.body().identity,
                confidentiality_key: cert.body().confidentiality,
                state_version: version,
                time: now,
                actor: Sender::Box(cert.body().issuer),
            };
            store.register_box(&new).await?;
        }
        let known: Vec<_> =
            store.domain_processes(id).await?.into_iter().map(|p| p.domain).collect();
        for process in home.processes(id)? {
            let p = process.body();
            if known.contains(&p.domain) {
                continue;
            }
            let new = NewDomainProcess {
                box_id: id,
                domain: p.domain.clone(),
                subdomains: p.subdomains.clone(),
                record: SignedRecord::from_verified(&process),
                time: now,
                actor: process.header().sender.clone(),
            };
            store.add_domain_process(&new).await?;
        }
    }
    Ok(())
}
