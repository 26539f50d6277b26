//! `GET /api/v1/events`: a WebSocket pushing what the dashboard shows, as JSON text
//! messages: first `{"type":"hello", "site":…, "stations":[…]}`, then
//! `{"type":"station", "station":…}` when a station's state changes,
//! `{"type":"station_removed", "id":…}`, and `{"type":"site", "site":…}` after allocation
//! rounds (at most one a second). The client only listens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Handler, StreamHandler, WrapFuture,
};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use ampwarden_actors::supervisor::{SiteStatus, SiteUpdate, Subscribe};
use ampwarden_actors::units::ChargePointId;
use serde_json::json;

use super::api::site::{site_view, with_names};
use super::api::stations::views;
use super::api::Ctl;
use crate::controller::Controller;

/// How often the feed looks for station changes and sends the latest round.
const TICK: Duration = Duration::from_secs(1);

pub async fn events(
    req: HttpRequest,
    stream: web::Payload,
    ctl: Ctl,
) -> Result<HttpResponse, actix_web::Error> {
    let session = EventsSession {
        controller: ctl.get_ref().clone(),
        last_station: HashMap::new(),
        greeted: false,
        pending_site: None,
        busy: false,
    };
    ws::WsResponseBuilder::new(session, &req, stream).start()
}

struct EventsSession {
    controller: Controller,
    /// What was last sent per station, to send only changes.
    last_station: HashMap<ChargePointId, String>,
    greeted: bool,
    /// The newest allocation round not sent yet.
    pending_site: Option<Arc<SiteStatus>>,
    /// A poll is under way (a slow station actor must not pile them up).
    busy: bool,
}

impl EventsSession {
    fn tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.greeted {
            if let Some(status) = self.pending_site.take() {
                let site = with_names(&self.controller, status);
                ctx.text(json!({ "type": "site", "site": site }).to_string());
            }
        }
        if self.busy {
            return;
        }
        self.busy = true;
        let controller = self.controller.clone();
        let greet = !self.greeted;
        ctx.spawn(
            async move {
                let views = views(&controller).await.unwrap_or_default();
                let site = if greet {
                    site_view(&controller).await.ok()
                } else {
                    None
                };
                (views, site)
            }
            .into_actor(self)
            .map(move |(views, site), session, ctx| {
                session.busy = false;
                if let Some(site) = site {
                    ctx.text(
                        json!({ "type": "hello", "site": site, "stations": views }).to_string(),
                    );
                    session.greeted = true;
                    session.pending_site = None;
                }
                let mut seen = HashMap::new();
                for v in views {
                    let text = serde_json::to_string(&v).unwrap_or_default();
                    if !greet && session.last_station.get(&v.id) != Some(&text) {
                        ctx.text(json!({ "type": "station", "station": v }).to_string());
                    }
                    seen.insert(v.id, text);
                }
                for gone in session
                    .last_station
                    .keys()
                    .filter(|id| !seen.contains_key(*id))
                {
                    ctx.text(json!({ "type": "station_removed", "id": gone }).to_string());
                }
                session.last_station = seen;
            }),
        );
    }
}

impl Actor for EventsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.controller.event_socket(true);
        self.controller
            .supervisor()
            .do_send(Subscribe(ctx.address().recipient()));
        self.tick(ctx);
        ctx.run_interval(TICK, |session, ctx| session.tick(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.controller.event_socket(false);
    }
}

impl Handler<SiteUpdate> for EventsSession {
    type Result = ();

    fn handle(&mut self, SiteUpdate(status): SiteUpdate, _: &mut Self::Context) {
        self.pending_site = Some(status);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for EventsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}
