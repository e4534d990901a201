//! The control channel against a real cluster: the agent enforces an order's deadline and reports what
//! it saw so far, an oversized probe is split and joined, and many orders share the session's one watch.

mod common;

use std::time::{Duration, Instant};

use netcheck::harness::cluster;
use netcheck::protocol::{Action, HTTP_PORT, HttpProbe, MAX_ATTEMPTS_PER_ORDER};
use netcheck::runner::Cluster;
use rstest::rstest;

fn http(targets: Vec<String>, attempts: u32, interval_ms: u64) -> HttpProbe {
    HttpProbe {
        targets,
        path: "/".into(),
        attempts,
        concurrency: 16,
        timeout_ms: 1000,
        interval_ms,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    }
}

#[rstest]
#[tokio::test]
async fn the_agent_stops_at_the_deadline_and_reports_what_it_saw(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let (node, agent) = session.agents.clients.iter().next().expect("a client agent");
    let echo = format!("{}:80", session.agents.cluster_ip);
    // 100 requests paced 100 ms apart would take 10 s; the deadline is 1.5 s.
    let sent = Instant::now();
    let r = session
        .channel
        .send_within(agent, Action::Http(http(vec![echo], 100, 100)), Duration::from_millis(1500))
        .await
        .unwrap_or_else(|e| panic!("{node}: {e}"));
    let waited = sent.elapsed();
    let why = r.partial.as_deref().expect("the result is marked partial");
    assert!(why.contains("deadline of 1500 ms"), "{why}");
    assert!((10..=20).contains(&r.attempts.len()), "{} attempts in 1.5 s at 100 ms", r.attempts.len());
    assert!(r.attempts.iter().all(|a| a.outcome.identity().is_some()), "what it saw is real answers");
    assert!((1500..3000).contains(&r.elapsed_ms), "the agent ran {} ms", r.elapsed_ms);
    assert!(waited < Duration::from_secs(10), "the runner had the result after {waited:?}");
    session.finish(false).await.unwrap();
}

#[rstest]
#[tokio::test]
async fn a_probe_too_large_for_one_result_is_split_and_joined(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let agent = session.agents.clients.values().next().expect("a client agent");
    // Every server agent's pod IP, repeated: more targets × attempts than one order may carry.
    let servers: Vec<String> = session.agents.servers.iter().map(|s| format!("{}:{HTTP_PORT}", s.ip)).collect();
    let targets: Vec<String> = servers.iter().cycle().take(servers.len() * 4).cloned().collect();
    let attempts = MAX_ATTEMPTS_PER_ORDER / 5;
    let r = session.channel.send(agent, Action::Http(http(targets.clone(), attempts, 0))).await.expect("a result");
    assert_eq!(r.partial, None);
    assert_eq!(r.attempts.len(), targets.len() * attempts as usize, "every attempt of every part");
    let answered = r.attempts.iter().filter(|a| a.outcome.identity().is_some()).count();
    assert_eq!(answered, r.attempts.len(), "pod IPs answer");
    session.finish(false).await.unwrap();
}

#[rstest]
#[tokio::test]
async fn many_orders_at_once_share_one_watch(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let echo = format!("{}:80", session.agents.cluster_ip);
    let rounds = (0..10).map(|_| session.order_every_client(|_| Action::Http(http(vec![echo.clone()], 5, 0))));
    let results = futures::future::join_all(rounds).await;
    let orders: Vec<_> = results.into_iter().flatten().collect();
    assert_eq!(orders.len(), 10 * session.agents.clients.len());
    for (node, r) in orders {
        let r = r.unwrap_or_else(|e| panic!("{node}: {e}"));
        assert_eq!(r.attempts.len(), 5, "{node}");
    }
    assert!(session.channel.margin() >= Duration::from_secs(10), "the margin never drops below its floor");
    session.finish(false).await.unwrap();
}

/// Orders are ConfigMaps: anyone who can write one in the run's namespace could try to make an agent
/// send traffic. An order stamped with another run (a stale runner, or someone else's) is refused by
/// the agent, which writes the refusal back and sends nothing.
#[rstest]
#[tokio::test]
async fn an_agent_refuses_an_order_of_another_run(#[future] cluster: Option<Cluster>) {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    use kube::runtime::wait::await_condition;
    use netcheck::protocol::{AGENT_LABEL, ORDER_KEY, ORDER_LABEL, Order, RESULT_KEY, parse_result};

    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let agent = session.agents.clients.values().next().expect("a client agent");
    let mut order = Order::new(Action::Http(http(vec![format!("{}:80", session.agents.cluster_ip)], 3, 0)));
    order.run = format!("not-{}", session.run_id);
    let name = "order-from-another-run";
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([
                (AGENT_LABEL.to_string(), agent.pod.clone()),
                (ORDER_LABEL.to_string(), "true".to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(ORDER_KEY.to_string(), serde_json::to_string(&order).unwrap())])),
        ..Default::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &session.namespace);
    api.create(&PostParams::default(), &cm).await.expect("creating the order");
    let answered =
        |cm: Option<&ConfigMap>| cm.and_then(|c| c.data.as_ref()).is_some_and(|d| d.contains_key(RESULT_KEY));
    let cm = tokio::time::timeout(Duration::from_secs(30), await_condition(api, name, answered))
        .await
        .expect("the agent answered within 30 s")
        .expect("watching the order")
        .expect("the order still exists");
    let result = parse_result(&cm.data.unwrap()[RESULT_KEY]).expect("a readable result");
    let error = result.error.expect("the order was refused");
    assert!(error.contains("refused an order of run") && error.contains(&session.run_id), "{error}");
    assert!(result.attempts.is_empty(), "a refused order sends nothing: {:?}", result.attempts);
    session.finish(false).await.unwrap();
}
