//! A GitLab CI job, end to end: the real registry in token mode, the emulator with a running
//! job's token, the real skopeo and docker CLI, and our helper in a clean environment
//! (`env -i` with only `PATH`, `HOME`, `GITLAB_CI`, `CI_*` and the job's `DOCKER_HOST`): no
//! D-Bus session, no keychain, no set-up beyond the image's `credHelpers`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::Config;

const PROJECT: &str = "group/project";
const DEPLOY_USER: &str = "gitlab+deploy-token-1";

/// The job: its home and its `CI_*` variables.
struct Job {
    home: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Job {
    fn new(w: &GitLabWorld, job_token: &str, deploy_token: &str) -> Job {
        let home = tempfile::tempdir().unwrap();
        let host = w.registry.host();
        // The CI image's only set-up: Docker's config points the registry at the helper.
        std::fs::create_dir_all(home.path().join(".docker")).unwrap();
        std::fs::write(
            home.path().join(".docker/config.json"),
            format!(r#"{{"credHelpers":{{"{host}":"gitlab"}}}}"#),
        )
        .unwrap();
        let vars = [
            ("CI", "true"),
            ("GITLAB_CI", "true"),
            ("CI_SERVER_URL", &w.gl.url()),
            ("CI_REGISTRY", &host),
            ("CI_REGISTRY_IMAGE", &format!("{host}/{PROJECT}")),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", job_token),
            ("CI_JOB_TOKEN", job_token),
            ("CI_DEPENDENCY_PROXY_SERVER", "proxy.gitlab.example:443"),
            ("CI_DEPENDENCY_PROXY_USER", "gitlab-ci-token"),
            ("CI_DEPENDENCY_PROXY_PASSWORD", "proxy-job-token"),
            ("CI_DEPLOY_USER", DEPLOY_USER),
            ("CI_DEPLOY_PASSWORD", deploy_token),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Job { home, vars }
    }

    fn var(&self, name: &str) -> &str {
        &self.vars.iter().find(|(k, _)| k == name).unwrap().1
    }

    fn data_dir(&self) -> PathBuf {
        self.home
            .path()
            .join(".local/share/docker-credential-gitlab")
    }

    /// Runs `cmd` as the job would: nothing of ours or of the developer's environment.
    fn run(&self, cmd: &mut Command, stdin: &str) -> Output {
        let bin_dir = Path::new(BIN).parent().unwrap();
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .env("HOME", self.home.path())
            // docker-in-docker jobs point the CLI at a daemon; here there is none, so
            // `docker login` logs in client-side and calls the helper's `store`.
            .env(
                "DOCKER_HOST",
                format!("unix://{}/no-daemon.sock", self.home.path().display()),
            )
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    fn helper(&self, args: &[&str], stdin: &str) -> Output {
        self.run(Command::new(BIN).args(args), stdin)
    }

    fn get(&self, host: &str) -> serde_json::Value {
        let out = self.helper(&["get"], host);
        assert_success(&out, &format!("get {host}"));
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn skopeo_push(&self, layout: &Path, tag: &str) -> Output {
        let dest = format!("docker://{}:{tag}", self.var("CI_REGISTRY_IMAGE"));
        self.run(&mut skopeo_copy_command(&oci_ref(layout), &dest, &[]), "")
    }

    fn docker_login(&self, user_var: &str, password_var: &str) -> Output {
        self.run(
            Command::new("docker").args([
                "login",
                self.var("CI_REGISTRY"),
                "-u",
                self.var(user_var),
                "--password-stdin",
            ]),
            self.var(password_var),
        )
    }
}

#[test]
fn a_gitlab_ci_job_pushes_with_zero_set_up() {
    if !(have_tool("skopeo") && have_tool("docker")) {
        return;
    }
    let Some(w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    w.gl.add_project(PROJECT);
    let job_token = w.gl.add_job_token(PROJECT);
    let deploy =
        w.gl.add_deploy_token(DEPLOY_USER, &["read_registry", "write_registry"], None);
    let job = Job::new(&w, &job_token, &deploy.token);
    let host = w.registry.host();
    let layout = write_oci_image(job.home.path(), 32 * 1024);

    // 1. skopeo pushes through the helper, which serves CI_REGISTRY_USER/PASSWORD.
    let out = job.skopeo_push(&layout, "v1");
    assert_success(&out, "skopeo copy in the job");
    assert!(
        w.gl.requests().iter().any(|r| r.path == JWT_AUTH
            && r.status == 200
            && r.username.as_deref() == Some("gitlab-ci-token")),
        "the registry token was not issued to the job"
    );
    let got = job.get(&host);
    assert_eq!(got["Username"], "gitlab-ci-token");
    assert_eq!(got["Secret"], job_token.as_str());
    let list = job.helper(&["list"], "");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[&host], "gitlab-ci-token");
    // Nothing was written for an environment credential: no store, no lease.
    assert!(!job.data_dir().exists(), "the job's get wrote files");

    // 2. The dependency proxy, with and without :443, from its own variables.
    for proxy in ["proxy.gitlab.example:443", "proxy.gitlab.example"] {
        let got = job.get(proxy);
        assert_eq!(got["Secret"], "proxy-job-token", "{proxy}");
    }

    // 3. The seeds' `docker login $CI_REGISTRY -u $CI_REGISTRY_USER --password-stdin`
    //    works: no keychain here, so (in CI) the file store takes it.
    let out = job.docker_login("CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD");
    assert_success(&out, "docker login with the job token");
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    let secrets = job.data_dir().join("secrets.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(job.get(&host)["Secret"], job_token.as_str());

    // 4. `docker login -u $CI_DEPLOY_USER`: the stored deploy token wins over the job's.
    let out = job.docker_login("CI_DEPLOY_USER", "CI_DEPLOY_PASSWORD");
    assert_success(&out, "docker login with the deploy token");
    let got = job.get(&host);
    assert_eq!(
        (got["Username"].as_str(), got["Secret"].as_str()),
        (Some(DEPLOY_USER), Some(deploy.token.as_str()))
    );
    w.gl.clear_requests();
    let out = job.skopeo_push(&layout, "v2");
    assert_success(&out, "skopeo copy with the deploy token");
    assert!(
        w.gl.requests()
            .iter()
            .any(|r| r.path == JWT_AUTH && r.username.as_deref() == Some(DEPLOY_USER)),
        "the push did not use the deploy token"
    );

    // 5. `docker logout` erases it, and the job token is served again.
    let out = job.run(Command::new("docker").args(["logout", &host]), "");
    assert_success(&out, "docker logout");
    assert_eq!(job.get(&host)["Secret"], job_token.as_str());

    // 6. doctor checks the job credential at /jwt/auth …
    let out = job.helper(&["doctor", &host], "");
    assert_success(&out, "doctor in a running job");
    let text = stdout(&out);
    assert!(text.contains("served by the GitLab CI job"), "{text}");
    assert!(text.contains("PASS  /jwt/auth"), "{text}");
    assert!(!text.contains(&job_token), "{text}");
    // … and once the job has finished, explains the 401.
    w.gl.revoke_token(&job_token);
    let out = job.helper(&["doctor", &host], "");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("the job token is no longer valid (the job has finished or was cancelled)"),
        "{text}"
    );
    assert!(!text.contains(&job_token), "{text}");

    // status names the source and the variable, never the value.
    let out = job.helper(&["status"], "");
    assert_success(&out, "status in the job");
    let text = stdout(&out);
    assert!(text.contains("GitLab CI job"), "{text}");
    assert!(text.contains("env CI_REGISTRY_PASSWORD"), "{text}");
    assert!(!text.contains(&job_token), "{text}");
}
