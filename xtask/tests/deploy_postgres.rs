//! The PostgreSQL deployment files: the Swarm overlay merged onto the shipped stack by Docker's
//! own `docker stack config` (client side only: no engine or Swarm needed), and the Kubernetes
//! manifests, say what the docs promise: one PostgreSQL service from the official image with its
//! data on a volume, the password only ever a secret file, the replicas' URL from a secret.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_yaml_ng::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| <Value as serde::Deserialize>::deserialize(document).expect("YAML"))
        .collect()
}

/// The stack as Swarm would deploy it: the shipped file with the PostgreSQL overlay merged.
fn merged_stack() -> Value {
    let swarm = deploy_dir().join("swarm");
    let output = Command::new("docker")
        .args(["stack", "config", "-c"])
        .arg(swarm.join("stack.yml"))
        .arg("-c")
        .arg(swarm.join("stack.postgres.yml"))
        // Client side only: no engine is asked.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `docker stack config` ({error}): install Docker's CLI (docker.io)")
        });
    assert!(
        output.status.success(),
        "docker stack config refused the PostgreSQL stack: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_yaml_ng::from_slice(&output.stdout).expect("docker stack config prints YAML")
}

fn secret_names(service: &Value) -> Vec<String> {
    service["secrets"]
        .as_sequence()
        .expect("the service has secrets")
        .iter()
        .map(|secret| {
            secret["source"]
                .as_str()
                .or_else(|| secret.as_str())
                .expect("a secret name")
                .to_owned()
        })
        .collect()
}

#[test]
fn the_postgres_stack_runs_the_official_image_on_a_volume_with_its_password_from_a_secret() {
    let stack = merged_stack();
    let postgres = &stack["services"]["postgres"];
    assert!(
        postgres["image"].as_str().unwrap().starts_with("postgres:"),
        "{postgres:?}"
    );
    let volumes = postgres["volumes"].as_sequence().expect("volumes");
    assert!(
        volumes.iter().any(|volume| volume["type"] == "volume"
            && volume["target"] == "/var/lib/postgresql/data"
            && stack["volumes"]
                .get(volume["source"].as_str().unwrap())
                .is_some()),
        "no named volume for the data: {volumes:?}"
    );
    assert_eq!(
        postgres["environment"]["POSTGRES_PASSWORD_FILE"],
        "/run/secrets/accountservice_database_password"
    );
    assert!(postgres["environment"].get("POSTGRES_PASSWORD").is_none());
    assert_eq!(secret_names(postgres), ["accountservice_database_password"]);
    assert_eq!(postgres["deploy"]["replicas"], 1);
    assert!(postgres["networks"].get("my_network").is_some());
}

#[test]
fn the_postgres_stack_gives_the_replicas_the_url_and_password_as_secret_files() {
    let stack = merged_stack();
    let service = &stack["services"]["accountservice"];
    let environment = &service["environment"];
    assert_eq!(
        environment["ACCOUNTSERVICE_DATABASE_URL_FILE"],
        "/run/secrets/accountservice_database_url"
    );
    assert_eq!(
        environment["ACCOUNTSERVICE_DATABASE_PASSWORD_FILE"],
        "/run/secrets/accountservice_database_password"
    );
    assert!(environment.get("ACCOUNTSERVICE_DATABASE_URL").is_none());
    let mut secrets = secret_names(service);
    secrets.sort();
    assert_eq!(
        secrets,
        [
            "accountservice_database_password",
            "accountservice_database_url"
        ]
    );
    for secret in secrets {
        assert_eq!(stack["secrets"][secret.as_str()]["external"], true);
    }
    // What the shipped stack promises still holds with the overlay.
    assert_eq!(
        service["environment"]["ACCOUNTSERVICE_MANAGEMENT_PORT"],
        "6768"
    );
    assert_eq!(service["deploy"]["replicas"], 2);
}

fn k8s_postgres() -> Vec<Value> {
    let dir = deploy_dir().join("k8s/postgres");
    let mut documents = Vec::new();
    for name in ["secret.yaml", "postgres.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("a manifest");
        documents.extend(yaml_documents(&text));
    }
    documents
}

#[test]
fn kubernetes_gets_postgres_and_the_url_and_password_through_one_secret() {
    let documents = k8s_postgres();
    let secret = documents
        .iter()
        .find(|doc| doc["kind"] == "Secret")
        .expect("a Secret");
    let name = secret["metadata"]["name"].as_str().unwrap();
    assert!(secret["stringData"].get("url").is_some());
    assert!(secret["stringData"].get("password").is_some());

    let statefulset = documents
        .iter()
        .find(|doc| doc["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres:")
    );
    let env = container["env"].as_sequence().unwrap();
    assert!(
        env.iter()
            .any(|var| var["name"] == "POSTGRES_PASSWORD_FILE")
    );
    assert!(!env.iter().any(|var| var["name"] == "POSTGRES_PASSWORD"));
    assert!(
        statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
            .is_string()
    );
    let volumes = statefulset["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    assert!(volumes.iter().any(|v| v["secret"]["secretName"] == name));
    assert!(documents.iter().any(|doc| doc["kind"] == "Service"));

    let patch = std::fs::read_to_string(deploy_dir().join("k8s/postgres/use-postgres.patch.yaml"))
        .expect("the patch");
    let patch = &yaml_documents(&patch)[0];
    let pod = &patch["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "accountservice");
    let env = container["env"].as_sequence().unwrap();
    for variable in [
        "ACCOUNTSERVICE_DATABASE_URL_FILE",
        "ACCOUNTSERVICE_DATABASE_PASSWORD_FILE",
    ] {
        assert!(env.iter().any(|var| var["name"] == variable), "{variable}");
    }
    assert!(
        !env.iter()
            .any(|var| var["name"] == "ACCOUNTSERVICE_DATABASE_URL")
    );
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], name);
}
