//! The `Templates` gRPC service: the template registry ([`dispatcher::registry`]) behind
//! the users file's rights. Every call is checked and recorded ([`Gate`]); the lifecycle
//! needs named principals (four eyes), so without `--users` the service refuses.

use std::path::PathBuf;
use std::sync::Arc;

use dispatcher::principals::{Action, Gate};
use dispatcher::registry::{Registry, RegistryError, Version, parse_day};
use pressrun_proto::v1::templates_server::Templates;
use pressrun_proto::v1::{
    InForceRequest, ListTemplatesRequest, ListTemplatesResponse, PublishRequest,
    ShowTemplateRequest, ShowTemplateResponse, TemplateBundle, TemplateEvent, TemplateVersion,
    TransitionRequest,
};
use tonic::{Request, Response, Status};

pub struct Service {
    pub state: PathBuf,
    pub gate: Option<Arc<Gate>>,
}

fn status(e: RegistryError) -> Status {
    match e {
        RegistryError::NoSuchVersion(_) | RegistryError::NoSuchTemplate(_) => {
            Status::not_found(e.to_string())
        }
        RegistryError::NoneInForce { .. } | RegistryError::NotInForce { .. } => {
            Status::failed_precondition(e.to_string())
        }
        RegistryError::WrongState { .. }
        | RegistryError::OwnApproval { .. }
        | RegistryError::Changed { .. } => Status::failed_precondition(e.to_string()),
        RegistryError::Invalid(_) => Status::invalid_argument(e.to_string()),
        RegistryError::Db(_) => Status::internal(e.to_string()),
    }
}

fn wire(v: Version, created: bool) -> TemplateVersion {
    TemplateVersion {
        name: v.name,
        version: v.version,
        hash: v.hash,
        state: v.state.as_str().to_string(),
        author: v.author,
        effective_from: v.from.unwrap_or_default(),
        effective_to: v.to.unwrap_or_default(),
        created,
    }
}

impl Service {
    /// The caller's name, once the call is allowed (and recorded).
    fn principal<T>(
        &self,
        req: &Request<T>,
        action: Action,
        target: &str,
    ) -> Result<String, Status> {
        let gate = self.gate.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "the template registry needs named principals: serve with --users users.toml",
            )
        })?;
        gate.authorize(req, action, target)
    }

    /// Runs `f` on the registry on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, Status> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = Registry::open(&state)?;
            f(&mut r)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)
    }
}

#[tonic::async_trait]
impl Templates for Service {
    async fn publish(
        &self,
        req: Request<PublishRequest>,
    ) -> Result<Response<TemplateVersion>, Status> {
        let by = self.principal(&req, Action::TemplatePublish, "")?;
        let b = req
            .into_inner()
            .bundle
            .ok_or_else(|| Status::invalid_argument("no bundle"))?;
        let bundle = renderer::wire::bundle_from_wire(b)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (bundle, compiled) = tokio::task::spawn_blocking(move || {
            let compiled = bundle.compile();
            (bundle, compiled)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let compiled = compiled.map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (id, version) = (
            compiled.template.id.clone(),
            compiled.template.version.clone(),
        );
        let (v, created) = self
            .with(move |r| r.publish(&bundle, &id, &version, &by))
            .await?;
        Ok(Response::new(wire(v, created)))
    }

    async fn transition(
        &self,
        req: Request<TransitionRequest>,
    ) -> Result<Response<TemplateVersion>, Status> {
        let action = match req.get_ref().action.as_str() {
            "submit" => Action::TemplateSubmit,
            "approve" => Action::TemplateApprove,
            "reject" => Action::TemplateReject,
            "schedule" => Action::TemplateSchedule,
            "retire" => Action::TemplateRetire,
            other => {
                return Err(Status::invalid_argument(format!(
                    "action {other:?}: submit, approve, reject, schedule or retire"
                )));
            }
        };
        let by = self.principal(&req, action, &req.get_ref().id)?;
        let t = req.into_inner();
        let v = self
            .with(move |r| match action {
                Action::TemplateSubmit => r.submit(&t.id, &by, &t.comment),
                Action::TemplateApprove => r.approve(&t.id, &by, &t.comment),
                Action::TemplateReject => r.reject(&t.id, &by, &t.comment),
                Action::TemplateRetire => r.retire(&t.id, &by, &t.comment, today()),
                _ => {
                    let from = parse_day(&t.effective_from)?;
                    let to = match t.effective_to.as_str() {
                        "" => None,
                        d => Some(parse_day(d)?),
                    };
                    r.schedule(&t.id, from, to, &by)
                }
            })
            .await?;
        Ok(Response::new(wire(v, false)))
    }

    async fn list(
        &self,
        req: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        self.principal(&req, Action::TemplateRead, "")?;
        let versions = self.with(|r| r.list()).await?;
        Ok(Response::new(ListTemplatesResponse {
            versions: versions.into_iter().map(|v| wire(v, false)).collect(),
        }))
    }

    async fn show(
        &self,
        req: Request<ShowTemplateRequest>,
    ) -> Result<Response<ShowTemplateResponse>, Status> {
        self.principal(&req, Action::TemplateRead, &req.get_ref().id)?;
        let id = req.into_inner().id;
        let (v, history) = self.with(move |r| r.show(&id)).await?;
        Ok(Response::new(ShowTemplateResponse {
            version: Some(wire(v, false)),
            history: history
                .into_iter()
                .map(|t| TemplateEvent {
                    at: t.at,
                    event: t.event,
                    principal: t.principal,
                    comment: t.comment,
                })
                .collect(),
        }))
    }

    async fn in_force(
        &self,
        req: Request<InForceRequest>,
    ) -> Result<Response<TemplateVersion>, Status> {
        self.principal(&req, Action::TemplateRead, &req.get_ref().name)?;
        let q = req.into_inner();
        let on = parse_day(&q.on).map_err(status)?;
        let v = self.with(move |r| r.in_force(&q.name, on)).await?;
        Ok(Response::new(wire(v, false)))
    }

    async fn fetch(
        &self,
        req: Request<ShowTemplateRequest>,
    ) -> Result<Response<TemplateBundle>, Status> {
        self.principal(&req, Action::TemplateRead, &req.get_ref().id)?;
        let id = req.into_inner().id;
        let bundle = self
            .with(move |r| {
                let (v, _) = r.show(&id)?;
                r.bundle(&v)
            })
            .await?;
        Ok(Response::new(renderer::wire::bundle_to_wire(&bundle)))
    }
}

/// Today in UTC: the day a retirement takes effect.
fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}
