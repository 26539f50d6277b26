//! `GET /api/v1/events`: a WebSocket pushing what the dashboard shows, as JSON text
//! messages: first `{"type":"hello", "site":…, "stations":[…]}`, then
//! `{"type":"station", "station":…}` whenever a station's state changes and
//! `{"type":"site", "site":…}` when the site totals do. The client only listens.

use std::collections::HashMap;
use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, StreamHandler, WrapFuture};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use ampwarden_actors::units::ChargePointId;
use serde_json::json;

use super::api::site::site_status;
use super::api::stations::views;
use super::api::Ctl;
use crate::controller::Controller;

/// How often the feed looks for changes.
const POLL_EVERY: Duration = Duration::from_secs(1);

pub async fn events(
    req: HttpRequest,
    stream: web::Payload,
    ctl: Ctl,
) -> Result<HttpResponse, actix_web::Error> {
    let session = EventsSession {
        controller: ctl.get_ref().clone(),
        last_station: HashMap::new(),
        last_site: None,
        busy: false,
    };
    ws::WsResponseBuilder::new(session, &req, stream).start()
}

struct EventsSession {
    controller: Controller,
    /// What was last sent per station and for the site, to send only changes.
    last_station: HashMap<ChargePointId, String>,
    last_site: Option<String>,
    /// A poll is under way (a slow station actor must not pile them up).
    busy: bool,
}

impl EventsSession {
    fn poll(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let controller = self.controller.clone();
        ctx.spawn(
            async move {
                let views = views(&controller).await.unwrap_or_default();
                let snapshots = views
                    .iter()
                    .filter_map(|v| v.live.clone().map(|l| (v.id.clone(), l)))
                    .collect();
                let site = site_status(&controller.config(), &snapshots);
                (views, site)
            }
            .into_actor(self)
            .map(|(views, site), session, ctx| {
                session.busy = false;
                let first = session.last_site.is_none();
                let site_text = serde_json::to_string(&site).unwrap_or_default();
                if first {
                    let hello = json!({ "type": "hello", "site": site, "stations": views });
                    ctx.text(hello.to_string());
                } else if session.last_site.as_deref() != Some(site_text.as_str()) {
                    ctx.text(json!({ "type": "site", "site": site }).to_string());
                }
                session.last_site = Some(site_text);
                let mut seen = HashMap::new();
                for v in views {
                    let text = serde_json::to_string(&v).unwrap_or_default();
                    if !first && session.last_station.get(&v.id) != Some(&text) {
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
        self.poll(ctx);
        ctx.run_interval(POLL_EVERY, |session, ctx| session.poll(ctx));
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
