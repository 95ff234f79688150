//! The shipped deployment files say what the issue promises: probes, security, update and
//! rollback policies, which port is published and which one the probes, peers and Prometheus
//! ask. No cluster runs here, so the YAML and the Dockerfile are parsed and checked.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every document of every YAML file in `deploy/k8s/`.
fn k8s_documents() -> Vec<Value> {
    let mut documents = Vec::new();
    for entry in std::fs::read_dir(deploy_dir().join("k8s")).expect("deploy/k8s is readable") {
        let path = entry.expect("a directory entry").path();
        if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            let text = std::fs::read_to_string(&path).expect("a readable manifest");
            for document in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = <Value as serde::Deserialize>::deserialize(document)
                    .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                documents.push(value);
            }
        }
    }
    documents
}

fn of_kind(documents: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = documents.iter().filter(|doc| doc["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} in deploy/k8s");
    found[0].clone()
}

/// The one document of `kind` named `name` in `deploy/k8s/`.
fn named(documents: &[Value], kind: &str, name: &str) -> Value {
    let found: Vec<&Value> = documents
        .iter()
        .filter(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind} {name} in deploy/k8s"
    );
    found[0].clone()
}

/// A container's environment as (name, value) pairs, in order.
fn environment(container: &Value) -> Vec<(String, Option<String>)> {
    container["env"]
        .as_sequence()
        .map(|env| {
            env.iter()
                .map(|var| {
                    (
                        var["name"].as_str().expect("a variable's name").to_owned(),
                        var["value"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `service`'s selector is not empty and every label in it is on the Deployment's pods.
fn assert_selects_the_pods(service: &Value, deployment: &Value) {
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = service["spec"]["selector"]
        .as_mapping()
        .expect("a Service with a selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            &pod_labels[key], value,
            "selector {key:?} does not match the pods"
        );
    }
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers is a list");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn http_probe(container: &Value, probe: &str) -> (String, i64) {
    let probe_value = &container[probe];
    assert!(probe_value.is_mapping(), "{probe} is missing");
    let path = probe_value["httpGet"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("{probe} has no httpGet.path"))
        .to_owned();
    let period = probe_value["periodSeconds"]
        .as_i64()
        .unwrap_or_else(|| panic!("{probe} has no periodSeconds"));
    (path, period)
}

#[test]
fn the_k8s_deployment_probes_liveness_readiness_and_startup_on_their_own_endpoints() {
    let deployment = of_kind(&k8s_documents(), "Deployment");
    let container = container(&deployment);
    assert_eq!(http_probe(container, "livenessProbe").0, "/health/live");
    assert_eq!(http_probe(container, "readinessProbe").0, "/health/ready");
    let (startup_path, startup_period) = http_probe(container, "startupProbe");
    assert_eq!(startup_path, "/health/started");
    let budget = startup_period
        * container["startupProbe"]["failureThreshold"]
            .as_i64()
            .unwrap();
    assert!(
        budget >= 10,
        "the startup probe allows only {budget} s to start"
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let port = &container[probe]["httpGet"]["port"];
        assert_eq!(port, "management", "{probe} probes port {port:?}");
    }
    let ports = container["ports"].as_sequence().unwrap();
    assert!(
        ports
            .iter()
            .any(|port| port["name"] == "management" && port["containerPort"] == 6768)
    );
    let env = container["env"].as_sequence().unwrap();
    assert!(env.iter().any(|variable| {
        variable["name"] == "ACCOUNTSERVICE_MANAGEMENT_PORT" && variable["value"] == "6768"
    }));
}

#[test]
fn the_k8s_deployment_runs_as_non_root_with_a_read_only_root_and_no_privilege_escalation() {
    let deployment = of_kind(&k8s_documents(), "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let security = &container(&deployment)["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_ne!(security["privileged"], true);
    let user = security["runAsUser"]
        .as_i64()
        .or_else(|| pod["securityContext"]["runAsUser"].as_i64())
        .expect("a numeric runAsUser");
    assert_ne!(user, 0);
    let dropped = security["capabilities"]["drop"].as_sequence().unwrap();
    assert!(dropped.iter().any(|cap| cap == "ALL"));
}

#[test]
fn the_k8s_deployment_has_resources_a_writable_data_volume_and_a_surge_only_rollout() {
    let deployment = of_kind(&k8s_documents(), "Deployment");
    let container = container(&deployment);
    let resources = &container["resources"];
    assert!(resources["requests"]["cpu"].is_string());
    assert!(resources["requests"]["memory"].is_string());
    assert!(resources["limits"]["memory"].is_string());
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    assert!(mounts.iter().any(|mount| mount["mountPath"] == "/data"));
    let rolling = &deployment["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(rolling["maxUnavailable"], 0);
}

#[test]
fn the_k8s_service_selects_the_deployment_pods_on_the_http_port() {
    let documents = k8s_documents();
    let deployment = of_kind(&documents, "Deployment");
    let service = named(&documents, "Service", "accountservice");
    assert_selects_the_pods(&service, &deployment);
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"], 6767);
    assert!(port["targetPort"] == "http" || port["targetPort"] == 6767);
}

#[test]
fn the_k8s_pods_find_every_other_pod_through_a_headless_service_on_the_management_port() {
    let documents = k8s_documents();
    let deployment = of_kind(&documents, "Deployment");
    let peers = named(&documents, "Service", "accountservice-peers");
    // Headless: its DNS name has one record per pod (as Swarm's tasks.<service>), not one
    // virtual IP that would hand every lookup to a single pod.
    assert_eq!(peers["spec"]["clusterIP"], "None");
    // A pod out of readiness (a fault of its own, draining) stays listed for the others.
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    assert_selects_the_pods(&peers, &deployment);
    let port = &peers["spec"]["ports"][0];
    assert_eq!(port["port"], 6768);
    assert_eq!(port["targetPort"], "management");
    let management = container(&deployment)["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "management")
        .expect("a management port")
        .clone();
    assert_eq!(management["containerPort"], 6768);

    // The Deployment names it, and the patch onto the shared database keeps it: a strategic
    // merge patch merges `env` by name, so a variable of the patch's own would replace it.
    let expected = Some("accountservice-peers:6768".to_owned());
    let env = environment(container(&deployment));
    let peers_env: Vec<_> = env
        .iter()
        .filter(|(name, _)| name == "ACCOUNTSERVICE_PEERS")
        .collect();
    assert_eq!(peers_env.len(), 1, "{env:?}");
    assert_eq!(
        peers_env[0].1, expected,
        "peers serve /health/history on 6768 only"
    );
    let patch: Value =
        serde_yaml_ng::from_str(&read("k8s/postgres/use-postgres.patch.yaml")).expect("valid YAML");
    let patched = patch["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("the patch's containers")
        .iter()
        .find(|c| c["name"] == "accountservice")
        .expect("the patch changes the accountservice container")
        .clone();
    let mut merged = env.clone();
    for (name, value) in environment(&patched) {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => merged.push((name, value)),
        }
    }
    let find = |name: &str| {
        merged
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    assert_eq!(find("ACCOUNTSERVICE_PEERS"), expected);
    assert!(find("ACCOUNTSERVICE_DATABASE_URL_FILE").is_some());
}

fn stack_service() -> Value {
    let stack: Value = serde_yaml_ng::from_str(&read("swarm/stack.yml")).expect("valid YAML");
    stack["services"]["accountservice"].clone()
}

#[test]
fn the_stack_updates_one_task_at_a_time_start_first_and_rolls_back_on_failure() {
    let service = stack_service();
    let deploy = &service["deploy"];
    assert!(deploy["replicas"].as_i64().unwrap() >= 2);
    let update = &deploy["update_config"];
    assert_eq!(update["parallelism"], 1);
    assert_eq!(update["order"], "start-first");
    assert_eq!(update["failure_action"], "rollback");
    assert!(
        update["monitor"].is_string(),
        "update_config needs a monitor window"
    );
    let rollback = &deploy["rollback_config"];
    assert!(rollback.is_mapping(), "rollback_config is missing");
    assert_eq!(rollback["parallelism"], 1);
    assert_eq!(deploy["restart_policy"]["condition"], "any");
}

#[test]
fn the_stack_spreads_the_replicas_over_the_nodes() {
    let service = stack_service();
    let preferences = service["deploy"]["placement"]["preferences"]
        .as_sequence()
        .expect("placement preferences");
    assert!(preferences.iter().any(|p| p["spread"] == "node.id"));
}

#[test]
fn the_stack_health_check_runs_the_probe_in_exec_form_with_every_timing_set() {
    let service = stack_service();
    let healthcheck = &service["healthcheck"];
    let test = healthcheck["test"]
        .as_sequence()
        .expect("exec form: a list");
    assert_eq!(test[0], "CMD");
    assert_eq!(test[1], "/healthchecker");
    assert!(
        !test
            .iter()
            .any(|arg| arg.as_str().is_some_and(|a| a.contains("||")))
    );
    assert_eq!(
        test[2..],
        ["--port", "6768", "--path", "/health/live"],
        "the health check asks liveness (a restart signal) on the management port"
    );
    for key in ["interval", "timeout", "retries", "start_period"] {
        assert!(!healthcheck[key].is_null(), "healthcheck.{key} is missing");
    }
    assert!(service["stop_grace_period"].is_string());
    assert_eq!(service["stop_signal"], "SIGTERM");
}

#[test]
fn the_stack_publishes_through_ingress_on_the_overlay_network_my_network() {
    let stack: Value = serde_yaml_ng::from_str(&read("swarm/stack.yml")).unwrap();
    let service = &stack["services"]["accountservice"];
    let ports = service["ports"].as_sequence().expect("a list of ports");
    assert_eq!(ports.len(), 1, "only the public port is published");
    let port = &ports[0];
    assert_eq!(port["target"], 6767);
    assert_eq!(port["published"], 6767);
    assert_eq!(port["mode"], "ingress");
    let network = &stack["networks"]["my_network"];
    assert_eq!(network["driver"], "overlay");
    assert_eq!(network["name"], "my_network");
    assert!(
        service["networks"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|n| n == "my_network")
    );
}

#[test]
fn the_stack_runs_the_management_port_and_finds_its_peers_on_it() {
    let environment = &stack_service()["environment"];
    assert_eq!(environment["ACCOUNTSERVICE_MANAGEMENT_PORT"], "6768");
    assert_eq!(
        environment["ACCOUNTSERVICE_PEERS"], "tasks.accountservice:6768",
        "peers serve /health/history on their management port only"
    );
}

#[test]
fn prometheus_scrapes_each_task_on_the_management_port() {
    let config: Value =
        serde_yaml_ng::from_str(&read("prometheus/prometheus.yml")).expect("valid YAML");
    let job = &config["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/metrics");
    assert_eq!(job["dockerswarm_sd_configs"][0]["port"], 6768);
    let rewrites: Vec<&Value> = job["relabel_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|rule| rule["target_label"] == "__address__")
        .collect();
    assert_eq!(rewrites.len(), 1, "{rewrites:?}");
    assert_eq!(rewrites[0]["replacement"], "$1:6768");
}

/// The Dockerfile's instructions as (keyword, rest), continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        if let Some((keyword, rest)) = current.split_once(char::is_whitespace) {
            instructions.push((keyword.to_uppercase(), rest.trim().to_owned()));
        }
        current.clear();
    }
    instructions
}

#[test]
fn the_dockerfile_is_from_scratch_non_root_with_an_exec_form_health_check() {
    let instructions = dockerfile_instructions(&read("Dockerfile"));
    let get = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.clone())
            .collect()
    };
    assert_eq!(get("FROM"), ["scratch"]);
    let user = get("USER").pop().expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user} is not a numeric non-root id"
    );
    assert_eq!(get("STOPSIGNAL"), ["SIGTERM"]);
    assert_eq!(
        get("EXPOSE"),
        ["6767"],
        "only the public port is exposed (what `docker run -P` publishes)"
    );
    assert!(
        get("ENV")
            .iter()
            .any(|env| env.contains("ACCOUNTSERVICE_DB_PATH=/data/accounts.db"))
    );
    assert!(
        get("ENV")
            .iter()
            .any(|env| env == "ACCOUNTSERVICE_MANAGEMENT_PORT=6768"),
        "the image runs with the management port"
    );
    assert!(get("VOLUME").iter().any(|volume| volume.contains("/data")));
    let healthcheck = get("HEALTHCHECK").pop().expect("a HEALTHCHECK");
    for flag in ["--interval=", "--timeout=", "--retries=", "--start-period="] {
        assert!(healthcheck.contains(flag), "HEALTHCHECK lacks {flag}");
    }
    let command = healthcheck.split_once("CMD").expect("a CMD").1.trim();
    assert!(
        command.starts_with('[') && command.ends_with(']'),
        "not exec form: {command}"
    );
    assert!(
        !command.contains("||"),
        "Docker ignores `|| exit 1` in exec form"
    );
    assert_eq!(
        command, r#"["/healthchecker", "--port", "6768", "--path", "/health/live"]"#,
        "the probe asks liveness (a restart signal) on the management port"
    );
}

#[test]
fn the_dockerfile_parser_used_here_joins_continuation_lines() {
    let parsed = dockerfile_instructions(
        "# c\nFROM scratch\nHEALTHCHECK --interval=1s \\\n    CMD [\"/x\"]\n",
    );
    assert_eq!(
        parsed,
        [
            ("FROM".to_owned(), "scratch".to_owned()),
            (
                "HEALTHCHECK".to_owned(),
                "--interval=1s  CMD [\"/x\"]".to_owned()
            )
        ]
    );
}

#[test]
fn the_multistage_dockerfile_ends_in_the_same_runtime_image_as_the_ci_dockerfile() {
    let runtime = |text: &str| -> Vec<(String, String)> {
        let instructions = dockerfile_instructions(text);
        let last_from = instructions
            .iter()
            .rposition(|(keyword, _)| keyword == "FROM")
            .expect("a FROM");
        instructions[last_from..]
            .iter()
            .filter(|(keyword, _)| keyword != "COPY")
            .cloned()
            .collect()
    };
    let ci = runtime(&read("Dockerfile"));
    let multistage = runtime(&read("Dockerfile.multistage"));
    assert_eq!(multistage, ci);
}

#[test]
fn each_orchestrator_s_grace_is_the_stop_grace_the_service_is_told() {
    let service = stack_service();
    let period = service["stop_grace_period"]
        .as_str()
        .expect("stop_grace_period is a duration");
    assert_eq!(
        service["environment"]["ACCOUNTSERVICE_STOP_GRACE"].as_str(),
        Some(period.trim_end_matches('s')),
        "swarm/stack.yml"
    );

    let deployment = of_kind(&k8s_documents(), "Deployment");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds is set");
    let told = container(&deployment)["env"]
        .as_sequence()
        .expect("env is a list")
        .iter()
        .find(|variable| variable["name"] == "ACCOUNTSERVICE_STOP_GRACE")
        .and_then(|variable| variable["value"].as_str())
        .map(str::to_owned);
    assert_eq!(told, Some(grace.to_string()), "k8s/deployment.yaml");
}
