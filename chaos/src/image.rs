//! `chaos image build`: the local Redis image for machines without registry access.
//!
//! The image is made by `docker/build-image.sh` (FROM scratch, the host's redis-server copied
//! under its own names, redis-cli, their shared libraries, writable /data /conf /tmp). This
//! command *runs that script* rather than re-implementing it: one recipe, maintained in one place,
//! also used by docker-compose users and `.ci/run`. The script is found next to the workspace
//! this binary was built from, or above the current directory; without it the command says so
//! (exit 3). Building is skipped when the image already exists, unless `--force`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::db::docker;

/// Where the build script lives, if it can be found.
pub fn find_script() -> Option<PathBuf> {
    let rel = Path::new("docker").join("build-image.sh");
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(&rel);
    if built_from.is_file() {
        return Some(built_from);
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().map(|d| d.join(&rel)).find(|p| p.is_file())
}

/// Builds `image` unless it exists (or `force`). `Err` = environment problem (exit 3).
pub async fn build(image: &str, force: bool) -> Result<String, String> {
    let engine = docker::engine().await?;
    if !force && docker::image_exists(&engine, image).await {
        return Ok(format!(
            "image {image} already exists, not rebuilding (--force to rebuild)"
        ));
    }
    let script = find_script().ok_or(
        "docker/build-image.sh not found (looked next to the workspace this binary was built \
         from and above the current directory); run chaos from the repository"
            .to_string(),
    )?;
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if force {
        cmd.arg("--force");
    }
    cmd.arg(image);
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run bash {}: {e}", script.display()))?;
    if status.success() {
        Ok(format!("image {image} built"))
    } else {
        Err(format!("{} failed ({status})", script.display()))
    }
}
