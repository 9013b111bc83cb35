//! The OpenSky client against a local HTTP server standing in for OpenSky:
//! a recorded answer, a transient 5xx, a rate-limit answer, garbage, and
//! OAuth2 client credentials.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use opensky::{BoundingBox, Credentials, OpenSkyClient, OpenSkyConfig, OpenSkyError};

const RECORDED: &str = include_str!("data/states_all.json");

/// An answer to give: status, headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Default)]
struct Fake {
    /// Answers to give, in order; the recorded answer once they run out.
    script: Mutex<Vec<Answer>>,
    token_calls: AtomicUsize,
    require_token: bool,
    queries: Mutex<Vec<String>>,
}

async fn states(State(f): State<Arc<Fake>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    f.queries.lock().unwrap().push(q.unwrap_or_default());
    if f.require_token && headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok-1") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let next = {
        let mut s = f.script.lock().unwrap();
        (!s.is_empty()).then(|| s.remove(0))
    };
    match next {
        Some((status, headers, body)) => {
            let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
        None => RECORDED.into_response(),
    }
}

async fn token(State(f): State<Arc<Fake>>, body: String) -> Response {
    f.token_calls.fetch_add(1, Ordering::SeqCst);
    if body.contains("client_secret=right") && body.contains("grant_type=client_credentials") {
        r#"{"access_token":"tok-1","expires_in":1800,"token_type":"Bearer"}"#.into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

async fn serve(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route("/api/states/all", get(states))
        .route("/token", post(token))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config(base: &str) -> OpenSkyConfig {
    OpenSkyConfig {
        base_url: format!("{base}/api"),
        token_url: format!("{base}/token"),
        ..OpenSkyConfig::default()
    }
}

#[tokio::test]
async fn a_recorded_answer_is_parsed_and_its_bad_row_counted() {
    let fake = Arc::new(Fake::default());
    let base = serve(fake.clone()).await;
    let bbox = BoundingBox {
        lamin: 30.0,
        lomin: -80.0,
        lamax: 60.0,
        lomax: 20.0,
    };
    let client = OpenSkyClient::new(OpenSkyConfig {
        bbox: Some(bbox),
        ..config(&base)
    })
    .unwrap();
    let snap = client.states().await.unwrap();
    assert_eq!(snap.time, 1_732_435_201);
    assert_eq!(snap.states.len(), 3);
    assert_eq!(snap.states[0], flight_types::sample_flight_state());
    assert_eq!(snap.malformed.len(), 1);
    assert_eq!(snap.malformed[0].index, 3);
    assert_eq!(
        fake.queries.lock().unwrap()[0],
        "extended=1&lamin=30&lomin=-80&lamax=60&lomax=20"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_rate_limits_reported() {
    let fake = Arc::new(Fake::default());
    fake.script.lock().unwrap().extend([
        (503, vec![], "busy"),
        (200, vec![], RECORDED),
        (429, vec![("X-Rate-Limit-Retry-After-Seconds", "7")], ""),
        (200, vec![], "<html>maintenance</html>"),
    ]);
    let base = serve(fake.clone()).await;
    let client = OpenSkyClient::new(config(&base)).unwrap();
    assert_eq!(client.states().await.unwrap().states.len(), 3, "503 then 200: retried");
    match client.states().await {
        Err(OpenSkyError::RateLimited { retry_after }) => assert_eq!(retry_after, Duration::from_secs(7)),
        other => panic!("{other:?}"),
    }
    let garbage = client.states().await.unwrap_err();
    assert!(
        matches!(garbage, OpenSkyError::Parse(_)) && garbage.is_transient(),
        "{garbage:?}"
    );
}

#[tokio::test]
async fn oauth2_client_credentials_are_fetched_once_and_reused() {
    let fake = Arc::new(Fake {
        require_token: true,
        ..Fake::default()
    });
    let base = serve(fake.clone()).await;
    let creds = |secret: &str| {
        Some(Credentials {
            client_id: "contrail".into(),
            client_secret: secret.into(),
        })
    };
    let client = OpenSkyClient::new(OpenSkyConfig {
        credentials: creds("right"),
        ..config(&base)
    })
    .unwrap();
    client.states().await.unwrap();
    client.states().await.unwrap();
    assert_eq!(fake.token_calls.load(Ordering::SeqCst), 1);

    let anonymous = OpenSkyClient::new(config(&base)).unwrap();
    assert!(matches!(
        anonymous.states().await,
        Err(OpenSkyError::Rejected { status: 401, .. })
    ));
    let wrong = OpenSkyClient::new(OpenSkyConfig {
        credentials: creds("wrong"),
        ..config(&base)
    })
    .unwrap();
    assert!(matches!(wrong.states().await, Err(OpenSkyError::Auth(_))));
}
