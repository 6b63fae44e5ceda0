//! The repository's `docker-compose.yml` driven as an operator drives it: a project of its own
//! (`-p`), settings through the environment, and `down -v` when the test ends however it ends.

use std::process::{Command, Output};

use super::root;

/// Docker, docker-compose and the local image, or why the test is skipped (a failure under CI).
pub fn compose_ready() -> Option<()> {
    let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let missing = if !ok(Command::new("docker-compose").arg("version")) {
        Some("docker-compose not installed")
    } else if !ok(Command::new("docker").args(["image", "inspect", "authority-redis:local"])) {
        Some("no authority-redis:local image (docker/build-image.sh) or no Docker engine")
    } else {
        None
    };
    match missing {
        None => Some(()),
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("under CI: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// One Compose project: its name, the profile it enables and the settings it runs with.
pub struct Project {
    pub name: String,
    pub profile: &'static str,
    pub env: Vec<(String, String)>,
}

impl Project {
    pub fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .current_dir(root())
            .args(["-p", &self.name, "--profile", self.profile])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("docker-compose runs")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.compose(&["down", "-v", "--remove-orphans"]);
    }
}
