//! Exactly one render per cache key, however many requests arrive at once,
//! across api processes.

use futures_util::future::join_all;

use kiln_e2e::{http, images, TestEnv};

#[tokio::test]
async fn a_hundred_concurrent_first_requests_over_two_apis_render_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api_a = env.spawn_api(&[]).await?;
    let api_b = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("crowd.jpg", images::jpeg(2000, 1500), "image/jpeg")
        .await?;
    let client = http();
    let path = env.signed_path("640x480,f:webp", &source);

    let requests = (0..100).map(|i| {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let request = client.get(api.url(&path)).send();
        async move {
            let response = request.await?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok::<_, anyhow::Error>((status, location))
        }
    });
    let results: Vec<(u16, Option<String>)> = join_all(requests)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    assert!(
        results.iter().all(|(status, _)| *status == 302),
        "{results:?}"
    );
    let objects: std::collections::HashSet<String> = results
        .iter()
        .filter_map(|(_, location)| location.as_deref()?.split('?').next().map(str::to_owned))
        .collect();
    assert_eq!(objects.len(), 1, "every response points at the same object");

    let queued = api_a.metric(&client, "kiln_jobs_queued_total", &[]).await?
        + api_b.metric(&client, "kiln_jobs_queued_total", &[]).await?;
    assert_eq!(queued, 1.0, "one job published across both apis");
    assert_eq!(
        worker
            .metric(&client, "kiln_jobs_total", &["outcome=\"ok\""])
            .await?,
        1.0
    );
    assert_eq!(env.cache_objects().await?.len(), 1);
    env.cleanup().await;
    Ok(())
}
