//! `rediss://` with a CA generated at test time, ACL users, and the errors an operator sees when the
//! CA, the password or the user is wrong — none of which may contain the password.

mod support;

use cache::{ConnectOptions, Error, Redis, RedisUrl};
use localredis::{RedisServer, ServerConfig, TlsFiles};
use support::*;

fn tls_options(files: &TlsFiles) -> ConnectOptions {
    ConnectOptions {
        tls_ca_pem: Some(std::fs::read(&files.ca_cert).unwrap()),
        ..Default::default()
    }
}

#[tokio::test]
async fn tls_with_a_trusted_ca_works_and_a_wrong_ca_is_refused_clearly() {
    if !have(&["redis-server"]) {
        return;
    }
    let files = TlsFiles::generate(&["localhost"]).unwrap();
    let server = RedisServer::start(
        ServerConfig::default()
            .password("tls-pw")
            .tls(files.clone()),
    )
    .unwrap();
    let url = format!("rediss://:tls-pw@localhost:{}", server.port());
    let redis = connect_with(&url, &tls_options(&files)).await;
    exercise_stores(redis, "tls").await;

    let other_ca = TlsFiles::generate(&["localhost"]).unwrap();
    let err = Redis::connect(&RedisUrl::parse(&url).unwrap(), &tls_options(&other_ca))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(msg.contains("TLS") && !msg.contains("tls-pw"), "{msg}");

    // The certificate names localhost, not this address: host-name verification must refuse it.
    let by_ip = format!("rediss://:tls-pw@127.0.0.1:{}", server.port());
    let err = Redis::connect(&RedisUrl::parse(&by_ip).unwrap(), &tls_options(&files))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Tls { .. }),
        "a certificate for another name: {err:?}"
    );
}

#[tokio::test]
async fn acl_user_works_and_wrong_credentials_give_an_auth_error_without_the_password() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(
        ServerConfig::default()
            .password("default-pw")
            .acl_user("oauth-app", "app-Secret-9"),
    )
    .unwrap();
    let port = server.port();
    let redis = connect(&format!(
        "redis://oauth-app:app-Secret-9@127.0.0.1:{port}/2"
    ))
    .await;
    exercise_stores(redis, "acl").await;
    // The `/2` in the URL selected database 2: the keys are there, not in 0.
    let mut conn = server.connect().unwrap();
    assert_eq!(
        conn.command(&["DBSIZE"]).unwrap(),
        localredis::resp::Reply::Integer(0)
    );
    conn.command(&["SELECT", "2"]).unwrap();
    assert!(
        matches!(conn.command(&["DBSIZE"]).unwrap(), localredis::resp::Reply::Integer(n) if n > 0)
    );

    for (url, secret) in [
        (
            format!("redis://oauth-app:Wrong-Pass-1@127.0.0.1:{port}"),
            "Wrong-Pass-1",
        ),
        (
            format!("redis://:Wrong-Pass-2@127.0.0.1:{port}"),
            "Wrong-Pass-2",
        ),
        (
            format!("redis://nobody:app-Secret-9@127.0.0.1:{port}"),
            "app-Secret-9",
        ),
    ] {
        let err = Redis::connect(&RedisUrl::parse(&url).unwrap(), &ConnectOptions::default())
            .await
            .unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(matches!(err, Error::Auth { .. }), "{url}: {err:?}");
        assert!(msg.contains("authentication failed"), "{msg}");
        assert!(!msg.contains(secret), "password leaked: {msg}");
    }
}
