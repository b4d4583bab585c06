//! Issue 24: the partner portal, driven over real HTTP as a browser would
//! (form posts, the session cookie, redirects not followed), and the API
//! reference page. Partner isolation holds here as in the API: partner B,
//! signed in, sees and changes nothing of partner A's.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{ADMIN_KEY, Stack, URL, expect_invalid, expect_problem};

/// `fields` as a form body (`application/x-www-form-urlencoded`).
fn form(request: reqwest::RequestBuilder, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    request
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
}

/// A browser signed in as one partner: the gateway, and the cookie.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: String,
}

impl Browser {
    /// Signs in with `key`; panics unless the gateway starts a session.
    async fn sign_in(stack: &Stack, key: &str) -> Self {
        Self::start(stack, "/portal/sign-in", ("key", key)).await
    }

    /// Opens a portal link's `token`; panics unless a session starts.
    async fn open_link(stack: &Stack, token: &str) -> Self {
        Self::start(stack, "/portal/link", ("token", token)).await
    }

    async fn start(stack: &Stack, path: &str, (field, key): (&str, &str)) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = form(http.post(format!("{}{path}", stack.base)), &[(field, key)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/portal"] {
            assert!(set.contains(attribute), "{attribute} missing: {set}");
        }
        assert!(!set.contains(key), "the cookie shows the key: {set}");
        let cookie = set.split(';').next().unwrap().to_owned();
        Self {
            base: stack.base.clone(),
            http,
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Posts a form; answers the status, where it redirects, and the page.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String, String) {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie);
        let response = form(request, fields).send().await.unwrap();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), location, response.text().await.unwrap())
    }
}

async fn registration(stack: &Stack, key: &str, partner: &str) -> Value {
    stack
        .as_key(key, Method::GET, &format!("/{partner}/callbacks/5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_manages_a_callback_and_its_secret_in_the_portal() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let browser = Browser::sign_in(&stack, &key).await;

    let (status, page) = browser.get("/portal/callbacks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No callbacks yet"), "an empty state: {page}");

    let (status, _, page) = browser
        .post(
            "/portal/callbacks",
            &[("type", "5"), ("url", "https://10.0.0.1/x")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("callBackUrl") && page.contains("private address"),
        "the refusal explained: {page}"
    );

    let (status, location, _) = browser
        .post("/portal/callbacks", &[("type", "5"), ("url", URL)])
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/portal/callbacks/5?done=saved")
    );
    let (_, page) = browser.get("/portal/callbacks").await;
    assert!(page.contains(URL) && page.contains("healthy"), "{page}");

    let (status, _, _) = browser.post("/portal/callbacks/5/pause", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        !registration(&stack, &key, &partner).await["pausedAt"].is_null(),
        "paused"
    );
    let (_, page) = browser.get("/portal/callbacks/5?done=paused").await;
    assert!(
        page.contains("Resume deliveries") && page.contains("paused"),
        "{page}"
    );
    browser.post("/portal/callbacks/5/resume", &[]).await;
    assert!(
        registration(&stack, &key, &partner).await["pausedAt"].is_null(),
        "resumed"
    );

    let (_, page) = browser.get("/portal/callbacks/5/secret").await;
    let secret = |page: &str| {
        let start = page.find("whsec_").expect("a secret on the page");
        page[start..].split('<').next().unwrap().to_owned()
    };
    let first = secret(&page);
    let (status, _, page) = browser.post("/portal/callbacks/5/secret/rotate", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(secret(&page), first, "rotated");

    let (status, location, _) = browser.post("/portal/callbacks/5/delete", &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/portal/callbacks")
    );
    let (_, page) = browser.get("/portal/callbacks").await;
    assert!(!page.contains(URL), "deleted: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_b_signed_in_sees_and_changes_nothing_of_partner_a() {
    let stack = Stack::with_delivery().await;
    let (a, a_key) = stack.partner("A").await;
    let receiver = stack.delivery.as_ref().unwrap().receiver.url("/a-only");
    let put = stack
        .put_callback(&a_key, &a, 5, json!({"callBackUrl": receiver}))
        .await;
    assert!(put.status().is_success());
    let alice = Browser::sign_in(&stack, &a_key).await;
    let (status, location, _) = alice
        .post(
            "/portal/callbacks/5/echo",
            &[("body", r#"{"processUniqueId":"a-1"}"#)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let delivery = location
        .trim_start_matches("/portal/deliveries/")
        .to_owned();
    let (status, page) = alice.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&delivery) && page.contains("test"), "{page}");

    let (_, b_key) = stack.partner("B").await;
    let bob = Browser::sign_in(&stack, &b_key).await;
    for path in [
        "/portal/callbacks".to_owned(),
        "/portal/callbacks/5".to_owned(),
        "/portal/callbacks/5/secret".to_owned(),
        "/portal/deliveries".to_owned(),
        format!("/portal/deliveries/{delivery}"),
    ] {
        let (status, page) = bob.get(&path).await;
        assert!(
            !page.contains("a-only") && !page.contains(&a),
            "{path} shows A's data: {page}"
        );
        assert!(!page.contains("whsec_"), "{path} shows a secret");
        if path.ends_with("/5") || path.contains("/secret") || path.contains(&delivery) {
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
    let (status, _, _) = bob.post("/portal/callbacks/5/pause", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = bob
        .post(&format!("/portal/deliveries/{delivery}/redeliver"), &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        registration(&stack, &a_key, &a).await["pausedAt"].is_null(),
        "A's stays unpaused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_refuse_no_cookie_a_forged_one_a_revoked_key_and_other_sites() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = |cookie: &'static str| {
        http.get(format!("{}/portal/callbacks", stack.base))
            .header(header::COOKIE, cookie)
            .send()
    };
    for cookie in [
        "",
        "pc_portal=garbage",
        "pc_portal=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let response = page(cookie).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(response.headers()[header::LOCATION], "/portal/sign-in");
    }
    let sign_in = http.post(format!("{}/portal/sign-in", stack.base));
    let refused = form(sign_in, &[("key", "pcb_not-a-key")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.unwrap().contains("not valid"));

    let browser = Browser::sign_in(&stack, &key).await;
    let cross_site = browser
        .http
        .post(format!("{}/portal/callbacks/5/pause", stack.base))
        .header(header::COOKIE, &browser.cookie)
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    stack.revoke_first_key(&partner).await;
    let (status, _) = browser.get("/portal/callbacks").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the session ends with its key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_shows_every_operation_of_the_document() {
    let stack = Stack::start().await;
    let document: Value = stack
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = stack.request(Method::GET, "/docs").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("<script src=\"http"),
        "nothing from elsewhere"
    );
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_some() {
                operations += 1;
                let shown = format!("{} {path}", method.to_uppercase());
                assert!(page.contains(&shown), "{shown} is not on /docs");
            }
        }
    }
    assert!(operations > 25, "{operations} operations");
    for schema in document["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            page.contains(&format!("id=\"schema-{schema}\"")),
            "{schema} is not on /docs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_callback_keeps_what_the_form_does_not_show() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let created = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": URL, "callBackUserName": "acme", "callBackPassword": "pw",
                   "merchantId": "m-1", "retryPolicy": {"name": "short"}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let browser = Browser::sign_in(&stack, &key).await;
    let moved = "https://hooks.example.com/moved";

    let (status, _, page) = browser
        .post(
            "/portal/callbacks/5",
            &[("url", moved), ("user", "acme"), ("policy", "short")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Password needed"), "{page}");
    assert_eq!(
        registration(&stack, &key, &partner).await["callBackUrl"],
        URL,
        "unchanged"
    );

    let (status, _, _) = browser
        .post(
            "/portal/callbacks/5",
            &[
                ("url", moved),
                ("user", "acme"),
                ("password", "pw2"),
                ("policy", "long"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let changed = registration(&stack, &key, &partner).await;
    assert_eq!(changed["callBackUrl"], moved);
    assert_eq!(changed["callBackUserName"], "acme");
    assert_eq!(changed["hasPassword"], true);
    assert_eq!(changed["merchantId"], "m-1", "kept");
    assert_eq!(changed["retryPolicy"]["name"], "long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_portal_link_opens_the_portal_only_until_it_ends() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let put = stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    assert!(put.status().is_success());
    let mint = |body: Value| {
        stack
            .as_key(
                ADMIN_KEY,
                Method::POST,
                &format!("/v1/admin/partners/{partner}/portal-links"),
            )
            .json(&body)
            .send()
    };
    expect_invalid(
        mint(json!({"expiresInSeconds": 10})).await.unwrap(),
        "expiresInSeconds",
        "between",
    )
    .await;
    let minted = mint(json!({"expiresInSeconds": 600})).await.unwrap();
    assert_eq!(minted.status(), StatusCode::CREATED);
    let minted: Value = minted.json().await.unwrap();
    let link = minted["link"].as_str().unwrap();
    let token = link
        .strip_prefix("/portal/link?token=")
        .expect("a portal link");
    assert_ne!(token, key, "the link carries a key of its own");

    // The REST API refuses the link's token; the portal takes it.
    let rest = stack
        .as_key(token, Method::GET, &format!("/{partner}/callbacks"))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(rest, StatusCode::UNAUTHORIZED).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("portal"),
        "{problem}"
    );
    let landing = reqwest::get(format!("{}{link}", stack.base)).await.unwrap();
    assert_eq!(landing.status(), StatusCode::OK);
    assert!(landing.text().await.unwrap().contains("Open the portal"));
    let browser = Browser::open_link(&stack, token).await;
    let (status, page) = browser.get("/portal/callbacks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(URL), "the partner's callbacks: {page}");
    let (status, _, _) = browser.post("/portal/callbacks/5/pause", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "it acts as the partner");

    // Revoked: the session ends at its next page.
    stack
        .revoke_key(&partner, minted["keyId"].as_str().unwrap())
        .await;
    let (status, _) = browser.get("/portal/callbacks").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Expired: refused, with the way out explained.
    let expiring: Value = mint(json!({"expiresInSeconds": 60}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let db = stack.db.client().await.unwrap();
    db.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
        &[&expiring["keyId"].as_str().unwrap()],
    )
    .await
    .unwrap();
    let expired_token = expiring["link"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let refused = form(
        http.post(format!("{}/portal/link", stack.base)),
        &[("token", expired_token)],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("expired or was revoked")
    );
}
