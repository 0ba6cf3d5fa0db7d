//! Queue types against the real RabbitMQ.

use kiln_e2e::{follow_redirect, http, images, TestEnv};

#[tokio::test]
async fn quorum_queues_carry_renders_too() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let quorum = [("KILN_QUEUE_TYPE", "quorum")];
    let api = env.spawn_api(&quorum).await?;
    let _worker = env.spawn_worker(&quorum).await?;
    let source = env
        .upload("q.jpg", images::jpeg(320, 240), "image/jpeg")
        .await?;
    let client = http();
    let response = client
        .get(api.url(&env.signed_path("160x120", &source)))
        .send()
        .await?;
    let (_, width, height) = follow_redirect(&client, response).await?;
    assert_eq!((width, height), (160, 120));

    // The work queue really is a quorum queue: declaring it classic is refused.
    let amqp =
        lapin::Connection::connect(&std::env::var("KILN_AMQP_URL")?, Default::default()).await?;
    let channel = amqp.create_channel().await?;
    let classic = channel
        .queue_declare(
            format!("{}image", env.queue_prefix).into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    let refused = format!("{:?}", classic.err());
    assert!(
        refused.contains("x-queue-type") || refused.contains("PRECONDITION"),
        "{refused}"
    );
    env.cleanup().await;
    Ok(())
}
